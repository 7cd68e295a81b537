"""Log-probabilities of tokens, as OpenAI's ``logprobs`` report them: each token's, and the
most likely alternatives at its position (of the model's distribution before temperature)."""

from __future__ import annotations

from typing import Any

from stoker.runner.backends.protocol import TokenLogprob


def token_logprob(tokenizer: Any, logp: Any, token: int, top: int) -> TokenLogprob:
    """``token``'s entry, from ``logp``: the log-softmax over the vocabulary at its
    position."""
    alternatives: tuple[tuple[str, float], ...] = ()
    if top > 0:
        values, ids = logp.topk(top)
        alternatives = tuple((token_text(tokenizer, int(t)), float(v))
                             for v, t in zip(values.tolist(), ids.tolist(), strict=True))
    return TokenLogprob(token_text(tokenizer, token), float(logp[token]), alternatives)


def token_text(tokenizer: Any, token: int) -> str:
    """One token as text (a piece of a character may come out as U+FFFD)."""
    return str(tokenizer.decode([token]))


def prompt_logprobs(model: Any, tokenizer: Any, torch: Any, ids: list[int], top: int,
                    device: Any) -> list[TokenLogprob]:
    """Each prompt token's log-probability given the tokens before it (the first has none):
    one forward pass over the prompt, keeping every position's logits."""
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=False)
    logp = out.logits[0].float().log_softmax(-1)
    entries = [TokenLogprob(token_text(tokenizer, ids[0]), None)] if ids else []
    entries += [token_logprob(tokenizer, logp[j - 1], ids[j], top) for j in range(1, len(ids))]
    return entries
