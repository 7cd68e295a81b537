"""Make a small Llama-architecture model and its tokenizer, saved as a normal HF checkpoint.

Model hubs cannot be reached from our machines, so the project makes its own model. It is loaded
by exactly the code that loads any local checkpoint (:mod:`stoker.runner.backends.transformers`).
The weights are random (seeded), so its outputs are nonsense, but every forward pass is real.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# Enough varied English to train a small byte-level BPE; every byte stays encodable anyway.
_CORPUS = """
The quick brown fox jumps over the lazy dog. A warm pool of runners keeps the model loaded.
Requests are queued by tier and team, batched together, and answered in one forward pass.
Evaluation suites run on every pull request; a smoke test asks a few prompts, a regression
suite asks hundreds. Batch inference reads millions of lines and writes an output file.
What is the capital of France? Paris is the capital of France. Summarise the following text.
Translate this sentence into German. Write a haiku about graphics processors and queues.
Classify the sentiment of this review: the product arrived late but works very well.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2.71 42. Code: def main(): return 0
{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {}}
""".strip()


def create_tiny_model(directory: Path, *, vocab_size: int = 2048, seed: int = 0) -> Path:
    """Create the tiny model and tokenizer in ``directory`` and return it.

    About 4 M parameters: hidden 256, 4 layers, 4 heads (2 KV heads), 2,048 positions.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<pad>",  # noqa: S106 - a token of the vocabulary, not a secret
        bos_token="<s>",  # noqa: S106
        eos_token="</s>",  # noqa: S106
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    return directory


def is_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds a loadable checkpoint (config, weights and tokenizer)."""
    has_weights = any(directory.glob("*.safetensors")) or any(directory.glob("*.bin"))
    return (directory / "config.json").is_file() and has_weights and (
        (directory / "tokenizer.json").is_file() or (directory / "tokenizer_config.json").is_file()
    )
