"""Continuous batching for a transformers model: rows join and leave one running decode loop.

Every step is one forward pass over the rows in flight, each feeding its last token through
the shared KV cache. Rows that joined since the last step are first prefilled together (their
prompts left-padded into one tensor) and their caches merged into the running one, so a row
that finishes early frees its slot for the next request at the very next step instead of
idling until the longest row of a static batch is done.

The cache is kept left-padded: row ``i`` of every layer holds its real positions at the right
end, and ``mask`` marks which columns are real. Columns no row needs any more are cut off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stoker.openai_tools import tools_refused
from stoker.runner.backends.json_output import RowConstraint, SchemaRefused
from stoker.runner.backends.logprobs import token_logprob
from stoker.runner.backends.protocol import GenerationInput, GenerationOutput, TokenLogprob
from stoker.runner.backends.stop_sequences import cut_at_stop

if TYPE_CHECKING:
    from stoker.runner.backends.transformers import TransformersBackend


@dataclass
class _Row:
    """Decode state of one input."""

    key: str
    spec: GenerationInput
    prompt_ids: list[int]
    generator: Any
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    stop_sequence: str | None = None
    #: The tokens' log-probabilities so far, when asked for (the prompt's first with echo).
    logprobs: list[TokenLogprob] | None = None
    #: What comes before the generated text: the prompt, with echo.
    prefix: str = ""
    #: The tokens it may take next, when its answer must be JSON (``response_format``).
    constraint: RowConstraint | None = None

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt as encoded."""
        return len(self.prompt_ids)


class TransformersDecodeLoop:
    """One running decode loop over a loaded :class:`TransformersBackend`."""

    def __init__(self, backend: TransformersBackend) -> None:
        self._backend = backend
        self._torch = backend.torch
        self._tokenizer = backend.tokenizer
        self._eos = backend.tokenizer.eos_token_id
        self._pad = backend.tokenizer.pad_token_id
        self._joining: list[_Row] = []
        self._rows: list[_Row] = []
        self._cache: Any = None
        self._mask: Any = None  # [rows, columns]: 1 where the cache holds a real position
        self._next_position: Any = None  # [rows]: the position of each row's next token
        self._last_token: Any = None  # [rows]: the token each row feeds next

    @property
    def in_flight(self) -> int:
        """Rows decoding or waiting to join at the next step."""
        return len(self._rows) + len(self._joining)

    def join(self, key: str, spec: GenerationInput) -> GenerationOutput | None:
        """Add an input; it starts at the next step. An input the model cannot take is
        answered at once with its error (and does not join)."""
        if spec.uses_tools():
            return GenerationOutput("", "error", 0, 0, error=tools_refused(
                template_has_tools=self._backend.template_has_tools))
        ids = self._backend.encode(spec)
        problem = self._backend.too_long(ids, spec)
        if problem is not None:
            return GenerationOutput("", "error", len(ids), 0, error=problem)
        row = _Row(key, spec, ids, self._backend.generator(spec.seed))
        schema = spec.answer_schema()
        if schema is not None:
            try:
                row.constraint = self._backend.json_constraints.for_schema(schema)
            except SchemaRefused as exc:
                return GenerationOutput("", "error", len(ids), 0, error=str(exc))
        if spec.logprobs is not None:
            row.logprobs = (self._backend.prompt_logprobs(ids, spec.logprobs) if spec.echo
                            else [])
        if spec.echo:
            row.prefix = (spec.prompt if spec.prompt is not None
                          else str(self._tokenizer.decode(ids)))
        if spec.max_tokens == 0:
            # Nothing to generate (a log-likelihood scored with echo): answered at once.
            return self._output(row)
        self._joining.append(row)
        return None

    def partial_text(self, key: str) -> str | None:
        """The text a row in flight has produced so far (None once it left the loop)."""
        for row in self._rows:
            if row.key == key:
                if row.spec.stop:
                    return row.text
                return str(self._tokenizer.decode(row.tokens, skip_special_tokens=True))
        return None

    def abandon(self, keys: set[str]) -> list[str]:
        """Drop the rows under ``keys`` unanswered; the keys that were in the loop. Called
        between steps, when every row that finished has been taken."""
        gone = [r.key for r in self._joining if r.key in keys]
        self._joining = [r for r in self._joining if r.key not in keys]
        for row in self._rows:
            if row.key in keys:
                row.finish_reason = "abandoned"
                gone.append(row.key)
        self._take_finished()  # only the abandoned rows are finished now: no answer is lost
        return gone

    def step(self) -> list[tuple[str, GenerationOutput]]:
        """One forward pass: the prefill of the rows that joined (their first tokens), else
        one token for every row. Returns the rows that finished, with their outputs.

        A prefill is a step of its own so that a new row's first token is out one pass after
        it joined, not two: what an online request waits for before its text starts."""
        with self._torch.inference_mode():
            if self._joining:
                self._admit()
            elif self._rows:
                self._decode_one()
            else:
                return []
            return self._take_finished()

    def _admit(self) -> None:
        """Prefill the joining rows together, pick their first tokens, merge their caches."""
        torch = self._torch
        rows, self._joining = self._joining, []
        width = max(r.prompt_tokens for r in rows)
        device = self._backend.device
        input_ids = torch.tensor([[self._pad] * (width - r.prompt_tokens) + r.prompt_ids
                                  for r in rows], device=device)
        mask = torch.tensor([[0] * (width - r.prompt_tokens) + [1] * r.prompt_tokens
                             for r in rows], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # Only the last position's logits are needed: the rest would cost a vocabulary-wide
        # projection per prompt token.
        out = self._backend.model(input_ids=input_ids, attention_mask=mask,
                                  position_ids=positions, use_cache=True, logits_to_keep=1)
        first = self._pick(rows, out.logits[:, -1, :])
        next_position = torch.tensor([r.prompt_tokens for r in rows], device=device)
        self._merge(rows, out.past_key_values, mask, next_position, first)

    def _merge(self, rows: list[_Row], cache: Any, mask: Any, next_position: Any,
               last_token: Any) -> None:
        torch = self._torch
        if not self._rows:
            self._rows, self._cache, self._mask = rows, cache, mask
            self._next_position, self._last_token = next_position, last_token
            return
        old_width, new_width = self._mask.shape[1], mask.shape[1]
        width = max(old_width, new_width)
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(torch, old.keys, width),
                                  _left_pad(torch, new.keys, width)], dim=0)
            old.values = torch.cat([_left_pad(torch, old.values, width),
                                    _left_pad(torch, new.values, width)], dim=0)
        self._mask = torch.cat([_left_pad(torch, self._mask, width, dim=1),
                                _left_pad(torch, mask, width, dim=1)], dim=0)
        self._next_position = torch.cat([self._next_position, next_position])
        self._last_token = torch.cat([self._last_token, last_token])
        self._rows = self._rows + rows

    def _decode_one(self) -> None:
        torch = self._torch
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        out = self._backend.model(input_ids=self._last_token[:, None], attention_mask=self._mask,
                                  position_ids=self._next_position[:, None],
                                  past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        self._next_position = self._next_position + 1
        self._last_token = self._pick(self._rows, out.logits[:, -1, :])

    def _take_finished(self) -> list[tuple[str, GenerationOutput]]:
        """Answer the finished rows and drop them (and the columns no row needs) from the
        cache."""
        done = [i for i, r in enumerate(self._rows) if r.finish_reason is not None]
        if not done:
            return []
        outputs = [(self._rows[i].key, self._output(self._rows[i])) for i in done]
        keep = [i for i, r in enumerate(self._rows) if r.finish_reason is None]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = self._mask = self._next_position = self._last_token = None
            return outputs
        index = self._torch.tensor(keep, device=self._backend.device)
        mask = self._mask.index_select(0, index)
        # Leading columns that are padding for every remaining row are dead weight.
        live = int(mask.any(dim=0).nonzero()[0])
        self._mask = mask[:, live:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, live:, :]
            layer.values = layer.values.index_select(0, index)[:, :, live:, :]
        self._next_position = self._next_position.index_select(0, index)
        self._last_token = self._last_token.index_select(0, index)
        return outputs

    def _output(self, row: _Row) -> GenerationOutput:
        if not row.spec.stop:
            row.text = self._tokenizer.decode(row.tokens, skip_special_tokens=True)
        return GenerationOutput(row.prefix + row.text, row.finish_reason or "length",
                                row.prompt_tokens, len(row.tokens),
                                stop_sequence=row.stop_sequence,
                                logprobs=tuple(row.logprobs) if row.logprobs is not None
                                else None)

    def _pick(self, rows: list[_Row], logits: Any) -> Any:
        """Choose each row's next token and update its text and finish state."""
        logits = logits.float()
        chosen = logits.argmax(dim=-1)
        wanted = any(row.logprobs is not None for row in rows)
        logp = logits.log_softmax(dim=-1) if wanted else None
        for i, row in enumerate(rows):
            if row.finish_reason is not None:
                continue
            row_logits = logits[i]
            if row.constraint is not None:
                row_logits = self._constrain(row_logits, row.constraint.allowed(row.tokens))
                chosen[i] = row_logits.argmax()
            if row.spec.temperature > 0:
                chosen[i] = self._sample(row_logits, row)
            token = int(chosen[i])
            if logp is not None and row.logprobs is not None and token != self._eos:
                row.logprobs.append(token_logprob(self._tokenizer, logp[i], token,
                                                  row.spec.logprobs or 0))
            self._append(row, token)
        return chosen

    def _constrain(self, logits: Any, allowed: list[int]) -> Any:
        """``logits`` with every token but ``allowed`` ruled out."""
        torch = self._torch
        kept = torch.full_like(logits, float("-inf"))
        index = torch.tensor(allowed, device=logits.device, dtype=torch.long)
        return kept.index_copy(0, index, logits.index_select(0, index))

    def _sample(self, logits: Any, row: _Row) -> int:
        torch = self._torch
        probs = torch.softmax(logits / row.spec.temperature, dim=-1)
        if row.spec.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < row.spec.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _append(self, row: _Row, token: int) -> None:
        if token == self._eos:
            row.finish_reason = "stop"
            return
        row.tokens.append(token)
        if row.spec.stop:
            # Stop sequences can span tokens, so they are matched on the decoded text.
            row.text = self._tokenizer.decode(row.tokens, skip_special_tokens=True)
            row.text, row.stop_sequence = cut_at_stop(row.text, row.spec.stop)
            if row.stop_sequence is not None:
                row.finish_reason = "stop"
                return
        if len(row.tokens) >= row.spec.max_tokens:
            row.finish_reason = "length"


def _left_pad(torch: Any, tensor: Any, width: int, *, dim: int = 2) -> Any:
    """``tensor`` with zero columns added in front along ``dim`` up to ``width``."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

