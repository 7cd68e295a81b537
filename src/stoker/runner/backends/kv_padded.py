"""Rows of a decode loop in one left-padded transformers cache: the layout for any model.

Row ``i`` of every layer holds its real positions at the right end and ``mask`` marks the
columns that are real. Rows that join are prefilled together in a pass of their own (their
prompts left-padded into one tensor) and their caches merged into the running one; finished
rows are cut out, with the leading columns no remaining row needs. Every step appends a
column to each layer, so the cache is copied once per step: the price of working with any
architecture transformers knows (:mod:`~stoker.runner.backends.kv_slots` avoids it for the
ones it supports).
"""

from __future__ import annotations

from typing import Any


class PaddedKvBatch:
    """The rows of a decode loop in a left-padded ``DynamicCache``."""

    def __init__(self, torch: Any, model: Any, device: Any, pad_token: int) -> None:
        self._torch, self._model, self._device, self._pad = torch, model, device, pad_token
        self._cache: Any = None
        self._mask: Any = None  # [rows, columns]: 1 where the cache holds a real position
        self._next_position: Any = None  # [rows]: the position of each row's next token
        self._last: Any = None  # [rows]: the token each row feeds next

    @property
    def rows(self) -> int:
        """Rows decoding."""
        return 0 if self._mask is None else int(self._mask.shape[0])

    def forward(self, prompts: list[list[int]]) -> tuple[Any, bool]:
        """The prompts' prefill if there are any (the running rows wait: False), else one
        token for every running row (True). Returns the logits of the rows that advanced."""
        if prompts:
            return self._prefill(prompts), False
        torch = self._torch
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        out = self._model(input_ids=self._last[:, None], attention_mask=self._mask,
                          position_ids=self._next_position[:, None],
                          past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        self._next_position = self._next_position + 1
        return out.logits[:, -1, :], True

    def _prefill(self, prompts: list[list[int]]) -> Any:
        torch = self._torch
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self._pad] * (width - len(p)) + p for p in prompts],
                                 device=self._device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts],
                            device=self._device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # Only the last position's logits are needed: the rest would cost a vocabulary-wide
        # projection per prompt token.
        out = self._model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                          use_cache=True, logits_to_keep=1)
        self._merge(out.past_key_values, mask,
                    torch.tensor([len(p) for p in prompts], device=self._device))
        return out.logits[:, -1, :]

    def _merge(self, cache: Any, mask: Any, next_position: Any) -> None:
        torch = self._torch
        if self._mask is None:
            self._cache, self._mask, self._next_position = cache, mask, next_position
            return
        width = max(self._mask.shape[1], mask.shape[1])
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(torch, old.keys, width),
                                  _left_pad(torch, new.keys, width)], dim=0)
            old.values = torch.cat([_left_pad(torch, old.values, width),
                                    _left_pad(torch, new.values, width)], dim=0)
        self._mask = torch.cat([_left_pad(torch, self._mask, width, dim=1),
                                _left_pad(torch, mask, width, dim=1)], dim=0)
        self._next_position = torch.cat([self._next_position, next_position])

    def next_tokens(self, tokens: Any) -> None:
        """The tokens the rows that advanced feed at the next step (after a prefill, only the
        new rows': the others' are unchanged)."""
        if self._last is not None and int(self._last.shape[0]) < self.rows:
            self._last = self._torch.cat([self._last, tokens])
        else:
            self._last = tokens

    def drop(self, finished: list[int]) -> list[int]:
        """Cut the ``finished`` rows (and the columns no row needs) out of the cache; returns
        the remaining rows' old indices, in order."""
        gone = set(finished)
        keep = [i for i in range(self.rows) if i not in gone]
        if not keep:
            self._cache = self._mask = self._next_position = self._last = None
            return keep
        index = self._torch.tensor(keep, device=self._device)
        mask = self._mask.index_select(0, index)
        # Leading columns that are padding for every remaining row are dead weight.
        live = int(mask.any(dim=0).nonzero()[0])
        self._mask = mask[:, live:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, live:, :]
            layer.values = layer.values.index_select(0, index)[:, :, live:, :]
        self._next_position = self._next_position.index_select(0, index)
        self._last = self._last.index_select(0, index)
        return keep


def _left_pad(torch: Any, tensor: Any, width: int, *, dim: int = 2) -> Any:
    """``tensor`` with zero columns added in front along ``dim`` up to ``width``."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
