"""Continuous batching for a transformers model: rows join and leave one running decode loop.

Every step is one forward pass over the rows in flight, each taking its next token, so a row
that finishes early frees its slot for the next request at the very next step instead of
idling until the longest row of a static batch is done. Where the rows' KV caches live and
how a joining row is prefilled is the business of a :class:`KvBatch`: cache slots and one
packed pass (:mod:`kv_slots`) for the architectures that allow it, a left-padded cache
(:mod:`kv_padded`) for any other. This module keeps the rows: what each asked for, its
tokens, its text and when it is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from stoker.openai_tools import tools_refused
from stoker.runner.backends.json_output import RowConstraint, SchemaRefused
from stoker.runner.backends.logprobs import token_logprob
from stoker.runner.backends.protocol import GenerationInput, GenerationOutput, TokenLogprob
from stoker.runner.backends.stop_sequences import cut_at_stop

if TYPE_CHECKING:
    from stoker.runner.backends.transformers import TransformersBackend


class KvBatch(Protocol):
    """The rows of a loop on the model: their caches, positions and next tokens."""

    def forward(self, prompts: list[list[int]]) -> tuple[Any, bool]:
        """One forward pass taking the ``prompts`` in as new rows (they come after the
        running ones). Returns the logits ([rows, vocabulary]) of the rows that got a next
        token, in row order, and whether the running rows were among them."""

    def next_tokens(self, tokens: Any) -> None:
        """The tokens chosen from the last pass's logits, fed at the next step."""

    def drop(self, finished: list[int]) -> list[int]:
        """Forget the ``finished`` rows; the others' old indices, in their new order."""


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
        self._joining: list[_Row] = []
        self._rows: list[_Row] = []  # in the order of the KV batch's rows
        self._kv: KvBatch = backend.kv_batch()

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
        with self._torch.inference_mode():  # the KV batch may move rows between slots
            self._take_finished()  # only the abandoned rows are finished now: none is lost
        return gone

    def step(self) -> list[tuple[str, GenerationOutput]]:
        """One forward pass: the rows that joined are prefilled (their first tokens) and,
        where the KV batch packs both into one pass, every running row takes its next token.
        Returns the rows that finished, with their outputs.

        A joining row's first token comes out of the very next pass: what an online request
        waits for before its text starts."""
        if not self._joining and not self._rows:
            return []
        joining, self._joining = self._joining, []
        with self._torch.inference_mode():
            logits, advanced = self._kv.forward([r.prompt_ids for r in joining])
            self._kv.next_tokens(self._pick((self._rows if advanced else []) + joining,
                                            logits))
            self._rows = self._rows + joining
            return self._take_finished()

    def _take_finished(self) -> list[tuple[str, GenerationOutput]]:
        """Answer the finished rows and drop them from the KV batch."""
        done = [i for i, r in enumerate(self._rows) if r.finish_reason is not None]
        if not done:
            return []
        outputs = [(self._rows[i].key, self._output(self._rows[i])) for i in done]
        self._rows = [self._rows[i] for i in self._kv.drop(done)]
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

