"""Constrained decoding for JSON answers (``response_format``): after each token,
lm-format-enforcer's JSON Schema parser says which tokens may come next, and the decode loop
picks among those only, so the answer is JSON that matches the schema (or stops at its token
budget, as OpenAI's does).

The tokenizer's table of token texts is built once per loaded model, on the first request
that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The most whitespace characters the answer may hold in a row.
MAX_WHITESPACE_RUN = 2


class SchemaRefused(ValueError):
    """A schema the constraint cannot follow, with why."""


class JsonConstraints:
    """Per-row constraints for one tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._data: Any = None

    def _tokenizer_data(self) -> Any:
        if self._data is None:
            from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

            tok = self._tokenizer
            # Decoded after a "0" and without its first character, a token shows whether it
            # starts a word (the leading space a tokenizer drops on its own).
            zero = tok.encode("0", add_special_tokens=False)[-1]
            special = set(tok.all_special_ids)
            regular = []
            for token in range(len(tok)):
                if token in special:
                    continue
                after_zero = tok.decode([zero, token])[1:]
                regular.append((token, after_zero, len(after_zero) > len(tok.decode([token]))))
            self._data = TokenEnforcerTokenizerData(regular, tok.decode, tok.eos_token_id,
                                                    False, len(tok))
        return self._data

    def for_schema(self, schema: Mapping[str, Any]) -> RowConstraint:
        """A fresh constraint for one answer; raises :class:`SchemaRefused`."""
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer

        try:
            parser = JsonSchemaParser(dict(schema))
        except Exception as exc:  # the library raises what its schema reader raises
            raise SchemaRefused(f"response_format's JSON schema cannot be followed: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                ) from None
        data = self._tokenizer_data()
        enforcer = TokenEnforcer(data, parser)
        # Runs of whitespace are where a model that has lost its way spends its budget (the
        # default allows 12 in a row); two keep ": ", ",\n" and pretty-printing. Set after
        # the enforcer, which gives its parser a configuration of its own.
        parser.config = CharacterLevelParserConfig(alphabet=data.tokenizer_alphabet,
                                                   max_consecutive_whitespaces=MAX_WHITESPACE_RUN)
        return RowConstraint(enforcer)


class RowConstraint:
    """Which tokens one answer may take next."""

    def __init__(self, enforcer: Any) -> None:
        self._enforcer = enforcer

    def allowed(self, generated: list[int]) -> list[int]:
        """The tokens that may follow ``generated`` (the end-of-text token once it is done)."""
        return list(self._enforcer.get_allowed_tokens(generated).allowed_tokens)
