"""Rows of a decode loop in cache slots, run as one packed (ragged) forward pass per step.

Each row owns a slot of a preallocated KV cache: position ``p`` of the row lives in column
``p`` of its slot, written in place, so a step copies no cache and a row joins or leaves by
taking or freeing a slot. A step packs every row's new tokens into one sequence without
padding: one token per running row, then each joining row's whole prompt. The linear layers
see them as one matrix; attention is done by :func:`slot_attention`, registered with
transformers as an attention implementation: the running rows attend to their slots (one
batched call), each joining prompt causally to itself. So a row joins in the same pass in
which the others take their next token, instead of a prefill pass of its own that stalls
them, which is what keeps the slots of a continuous loop full.

Only architectures whose attention is plain (rotary positions, no sliding window, no
soft-capping) take this path: see :func:`supports_slots`; others keep
:class:`~stoker.runner.backends.kv_padded.PaddedKvBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

ATTENTION_NAME = "stoker_slots"
#: Architectures whose attention modules compute nothing past (q, k, v, scaling): each is
#: checked against the padded layout in tests/runner/test_kv_slots.py.
SLOT_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_FIRST_COLUMNS = 256  # a new cache's columns; it doubles when a row needs more


def supports_slots(config: Any) -> bool:
    """Whether a model with this config decodes correctly through slot attention."""
    if getattr(config, "model_type", None) not in SLOT_MODEL_TYPES:
        return False
    # A sliding window would need masking this does not do.
    return getattr(config, "sliding_window", None) is None or not getattr(
        config, "use_sliding_window", True)


def use_slot_attention(model: Any) -> None:
    """Register :func:`slot_attention` with transformers and make it ``model``'s attention.
    Forward passes that are not a decode step (a prompt's log-probabilities) fall through to
    transformers' own SDPA attention and mask."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, slot_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)


@dataclass(frozen=True)
class SlotStep:
    """What one packed forward pass is made of, for the attention of every layer.

    The first ``running`` tokens are one per running row: row ``i`` is in slot ``i`` (``rows``
    is ``0..running`` as a tensor) and its token goes to column ``positions[i]``; ``visible``
    ([running, 1, 1, width], bool) says which columns each may see. Then each joining row's
    prompt: ``(slot, start, length)``, its tokens at ``start`` in the packed sequence,
    written to columns ``0..length``."""

    cache: SlotCache
    running: int
    rows: Any
    positions: Any
    visible: Any
    joining: tuple[tuple[int, int, int], ...]


class SlotCache:
    """Per layer, a keys and a values tensor of [slots, kv_heads, columns, head_dim]."""

    def __init__(self, torch: Any, config: Any, *, dtype: Any, device: Any) -> None:
        self._torch = torch
        self._layers = int(config.num_hidden_layers)
        self._kv_heads = int(getattr(config, "num_key_value_heads", None)
                             or config.num_attention_heads)
        self._head_dim = int(getattr(config, "head_dim", None)
                             or config.hidden_size // config.num_attention_heads)
        self._dtype, self._device = dtype, device
        self.keys: list[Any] = []
        self.values: list[Any] = []

    @property
    def slots(self) -> int:
        """Rows it holds room for."""
        return int(self.keys[0].shape[0]) if self.keys else 0

    @property
    def columns(self) -> int:
        """Positions per row it holds room for."""
        return int(self.keys[0].shape[2]) if self.keys else 0

    def reserve(self, slots: int, columns: int) -> None:
        """Make room for at least ``slots`` rows of ``columns`` positions, keeping what is in
        it. Grows by doubling, so a loop's growth costs few copies."""
        if slots <= self.slots and columns <= self.columns:
            return
        new_slots = self.slots if slots <= self.slots else max(slots, 2 * self.slots)
        new_columns = (self.columns if columns <= self.columns
                       else max(columns, 2 * self.columns, _FIRST_COLUMNS))
        shape = (new_slots, self._kv_heads, new_columns, self._head_dim)
        old_slots, old_columns = self.slots, self.columns
        for tensors in (self.keys, self.values):
            # Zeros, not empty memory: a masked column's value still meets a zero weight.
            grown = [self._torch.zeros(shape, dtype=self._dtype, device=self._device)
                     for _ in range(self._layers)]
            for new, old in zip(grown, tensors, strict=False):
                new[:old_slots, :, :old_columns] = old
            tensors[:] = grown

    def move(self, source: int, target: int, columns: int) -> None:
        """Copy a row's first ``columns`` positions from slot ``source`` to slot ``target``."""
        for tensors in (self.keys, self.values):
            for layer in tensors:
                layer[target, :, :columns] = layer[source, :, :columns]


def slot_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                   dropout: float = 0.0, scaling: float | None = None,
                   stoker_step: SlotStep | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention of one layer over a packed step (see :class:`SlotStep`); without a step, the
    SDPA attention transformers would have used. ``query`` is [1, heads, tokens, head_dim];
    ``key`` and ``value`` [1, kv_heads, tokens, head_dim] hold the new tokens only."""
    if stoker_step is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask,  # type: ignore[no-any-return]
                                      dropout=dropout, scaling=scaling, **kwargs)
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    step = stoker_step
    keys, values = step.cache.keys[module.layer_idx], step.cache.values[module.layer_idx]
    q, k, v = query[0], key[0], value[0]
    heads, tokens, head_dim = q.shape
    kv_heads = k.shape[0]
    out = q.new_empty(tokens, heads, head_dim)
    n = step.running
    if n:
        keys[step.rows, :, step.positions] = k[:, :n].transpose(0, 1)
        values[step.rows, :, step.positions] = v[:, :n].transpose(0, 1)
        width = step.visible.shape[-1]
        # One query per row: the query heads that share a key head become that head's
        # queries, so no key is repeated per query head.
        grouped = q[:, :n].transpose(0, 1).reshape(n, kv_heads, heads // kv_heads, head_dim)
        attended = sdpa(grouped, keys[:n, :, :width], values[:n, :, :width],
                        attn_mask=step.visible, scale=scaling)
        out[:n] = attended.reshape(n, heads, head_dim)
    for slot, start, length in step.joining:
        k_row, v_row = k[:, start:start + length], v[:, start:start + length]
        keys[slot, :, :length] = k_row
        values[slot, :, :length] = v_row
        attended = sdpa(q[None, :, start:start + length], k_row[None], v_row[None],
                        is_causal=True, scale=scaling, enable_gqa=True)
        out[start:start + length] = attended[0].transpose(0, 1)
    return out.unsqueeze(0), None


class SlotKvBatch:
    """The rows of a decode loop in a :class:`SlotCache`; see the module's text."""

    def __init__(self, torch: Any, model: Any, device: Any) -> None:
        self._torch, self._model, self._device = torch, model, device
        self._cache = SlotCache(torch, model.config, dtype=model.dtype, device=device)
        self._positions = torch.zeros(0, dtype=torch.long, device=device)  # next, per row
        self._last: Any = None  # [rows]: the token each row feeds next

    @property
    def rows(self) -> int:
        """Rows decoding."""
        return int(self._positions.shape[0])

    def forward(self, prompts: list[list[int]]) -> tuple[Any, bool]:
        """One packed pass: every running row's next token and each prompt's prefill. The
        logits are the running rows' then the prompts', and the running rows always advance."""
        torch, n = self._torch, self.rows
        lengths = [len(p) for p in prompts]
        width = int(self._positions.max()) + 1 if n else 0
        self._cache.reserve(n + len(prompts), max([width, *lengths]))
        starts = list(accumulate(lengths, initial=n))[:-1]  # where each prompt begins
        joined = [t for p in prompts for t in p]
        packed_ids = torch.tensor(joined, dtype=torch.long, device=self._device)
        packed_positions = torch.tensor([i for length in lengths for i in range(length)],
                                        dtype=torch.long, device=self._device)
        if n:
            packed_ids = torch.cat([self._last, packed_ids])
            packed_positions = torch.cat([self._positions, packed_positions])
        columns = torch.arange(width, device=self._device)
        step = SlotStep(self._cache, n, torch.arange(n, device=self._device), self._positions,
                        (columns[None, :] <= self._positions[:, None])[:, None, None, :],
                        tuple((n + i, start, length) for i, (start, length)
                              in enumerate(zip(starts, lengths, strict=True))))
        wanted = torch.tensor([*range(n), *(s + length - 1 for s, length
                                            in zip(starts, lengths, strict=True))],
                              device=self._device)
        out = self._model(input_ids=packed_ids[None], position_ids=packed_positions[None],
                          use_cache=False, logits_to_keep=wanted, stoker_step=step)
        self._positions = torch.cat([self._positions + 1,
                                     torch.tensor(lengths, dtype=torch.long,
                                                  device=self._device)])
        return out.logits[0], True

    def next_tokens(self, tokens: Any) -> None:
        """The tokens the rows feed at the next step, one per row."""
        self._last = tokens

    def drop(self, finished: list[int]) -> list[int]:
        """Free the slots of the ``finished`` rows; returns the remaining rows' old indices in
        their new order. A row from the end moves into each freed slot below the new count,
        so the running rows stay in slots ``0..n`` and no other row is copied."""
        gone = set(finished)
        alive = [i for i in range(self.rows) if i not in gone]
        count = len(alive)
        holes = [i for i in range(count) if i in gone]
        movers = [i for i in alive if i >= count]
        order = list(range(count))
        for hole, mover in zip(holes, movers, strict=True):
            self._cache.move(mover, hole, int(self._positions[mover]))
            order[hole] = mover
        index = self._torch.tensor(order, dtype=self._torch.long, device=self._device)
        self._positions = self._positions.index_select(0, index)
        self._last = self._last.index_select(0, index) if count else None
        return order
