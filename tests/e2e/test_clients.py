"""Clients built on the OpenAI API, run unchanged against a running Stoker: lm-evaluation-
harness (its `lm-eval` command, log-likelihood and generation tasks from local files, tokenized
and batched), litellm (completion, streaming, and the errors its fallbacks act on) and
langchain-openai (invoke, stream, structured output).

The server serves SmolLM2-135M-Instruct (where the answers must be right) and the tiny model
(where only their shape matters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.e2e.conftest import Server, smollm2_and_tiny_server

pytestmark = pytest.mark.timeout(600)

TOKEN = "clients-team-token"
QUOTA_TOKEN = "clients-quota-token"
ROOT = Path(__file__).parents[2]
TASKS = ROOT / "tests" / "e2e" / "lm_eval_tasks"
EXAMPLE_TASKS = ROOT / "examples" / "lm_eval"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
           smollm2: Path) -> Iterator[Server]:
    made = smollm2_and_tiny_server(
        tmp_path_factory.mktemp("clients"), smollm2, tiny_model_dir,
        batching={"max_batch_size": 8, "max_wait_ms": 20},
        teams={"app": {"token": TOKEN},
               "quota": {"token": QUOTA_TOKEN, "quotas": {"requests_per_minute": 1}}},
        runner_token="clients-runner-token")
    made.start(runners=1, expect=2)
    yield made
    made.kill_everything()


def lm_eval(server: Server, out: Path, *args: str) -> dict[str, Any]:
    """Run the `lm-eval` command as a user would (from the repository root, where the tasks'
    data paths start); its results and per-sample records."""
    env = {**os.environ, "OPENAI_API_KEY": TOKEN, "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lm-eval")), "run", *args,
         "--output_path", str(out), "--log_samples"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=500, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (results,) = out.rglob("results_*.json")
    samples = {p.name.split("_20")[0].removeprefix("samples_"):
               [json.loads(line) for line in p.read_text().splitlines()]
               for p in out.rglob("samples_*.jsonl")}
    return {"results": json.loads(results.read_text())["results"], "samples": samples}


def completions_args(server: Server, model: str, tokenizer: Path, batch_size: int) -> list[str]:
    return ["--model", "local-completions",
            "--model_args", f"model={model},base_url={server.url}/v1/completions,"
                            f"tokenizer={tokenizer},tokenizer_backend=huggingface,"
                            "num_concurrent=1,max_retries=1",
            "--batch_size", str(batch_size)]


@pytest.mark.conformance(client="lm-eval", feature="log-likelihood (multiple-choice) tasks, "
                                                   "tokenized, --batch_size N")
def test_lm_eval_scores_a_multiple_choice_task(server: Server, smollm2: Path,
                                               tmp_path: Path) -> None:
    run = lm_eval(server, tmp_path / "b4",
                  *completions_args(server, "smollm2", smollm2, 4),
                  "--include_path", str(TASKS), "--tasks", "stoker_capitals")
    samples = run["samples"]["stoker_capitals"]
    assert len(samples) == 6
    # SmolLM2 knows most capitals: the right choice is the likeliest in most documents.
    assert run["results"]["stoker_capitals"]["acc,none"] >= 4 / 6
    # lm-eval's numbers are Stoker's: the first choice's log-likelihood, asked for directly.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    first = samples[0]["arguments"]["gen_args_0"]
    context = tokenizer(first["arg_0"])["input_ids"]
    whole = tokenizer(first["arg_0"] + first["arg_1"])["input_ids"]
    scored = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN).completions.create(
        model="smollm2", prompt=whole, max_tokens=0, echo=True, logprobs=0)
    lp = scored.choices[0].logprobs
    assert lp is not None
    assert lp.token_logprobs is not None
    direct = sum(v for v in lp.token_logprobs[len(context):] if v is not None)
    assert float(samples[0]["resps"][0][0][0]) == pytest.approx(direct, abs=1e-3)
    # One prompt per call gives the same numbers as four per call.
    alone = lm_eval(server, tmp_path / "b1", *completions_args(server, "smollm2", smollm2, 1),
                    "--include_path", str(TASKS), "--tasks", "stoker_capitals")
    for batched, single in zip(samples, alone["samples"]["stoker_capitals"], strict=True):
        assert [float(r[0][0]) for r in batched["resps"]] == pytest.approx(
            [float(r[0][0]) for r in single["resps"]], abs=1e-3)


@pytest.mark.conformance(client="lm-eval", feature="generation tasks with stop lists "
                                                   "(local-completions, tokenized)")
def test_lm_eval_generates_with_stop_lists(server: Server, tiny_model_dir: Path,
                                           tmp_path: Path) -> None:
    run = lm_eval(server, tmp_path / "gen",
                  *completions_args(server, "tiny-llama", tiny_model_dir, 2),
                  "--include_path", str(EXAMPLE_TASKS), "--tasks", "stoker_smoke",
                  "--gen_kwargs", "until=Q:")
    samples = run["samples"]["stoker_smoke"]
    assert samples
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN)
    for sample in samples[:3]:
        # lm-eval asks for token ids with temperature 0 and seed 1234; the same call by the
        # SDK gives the text lm-eval recorded (Stoker's answer, cut at the stop strings).
        from transformers import AutoTokenizer

        ids = AutoTokenizer.from_pretrained(tiny_model_dir)(
            sample["arguments"]["gen_args_0"]["arg_0"])["input_ids"]
        direct = sdk.completions.create(model="tiny-llama", prompt=ids, max_tokens=16,
                                        temperature=0, seed=1234, stop=["\n", "Q:"])
        assert sample["resps"][0][0] == direct.choices[0].text
        assert "\n" not in direct.choices[0].text
        assert "Q:" not in direct.choices[0].text


@pytest.mark.conformance(client="lm-eval", feature="chat generation "
                                                   "(local-chat-completions, the example)")
def test_lm_eval_runs_the_chat_example(server: Server, tmp_path: Path) -> None:
    run = lm_eval(server, tmp_path / "chat", "--model", "local-chat-completions",
                  "--model_args", f"model=smollm2,base_url={server.url}/v1/chat/completions,"
                                  "num_concurrent=4,max_retries=1,tokenized_requests=False",
                  "--apply_chat_template", "--include_path", str(EXAMPLE_TASKS),
                  "--tasks", "stoker_smoke")
    samples = run["samples"]["stoker_smoke"]
    assert len(samples) == len((EXAMPLE_TASKS / "smoke.jsonl").read_text().splitlines())
    assert all(isinstance(s["resps"][0][0], str) for s in samples)
    assert "exact_match,none" in run["results"]["stoker_smoke"]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    # litellm fetches its price list from GitHub on import unless told to use its own copy.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm as module

    module.telemetry = False
    return module


def ask_litellm(litellm: ModuleType, server: Server, model: str, **extra: Any) -> Any:
    return litellm.completion(model=f"openai/{model}", api_base=f"{server.url}/v1",
                              api_key=extra.pop("api_key", TOKEN), num_retries=0, **extra)


@pytest.mark.conformance(client="litellm", feature="completion and streaming")
def test_litellm_completes_and_streams(server: Server, litellm: ModuleType) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    answer = ask_litellm(litellm, server, "smollm2", messages=messages, temperature=0,
                         max_tokens=24)
    text = answer.choices[0].message.content
    assert "Paris" in text
    assert answer.usage.completion_tokens > 0
    streamed = ask_litellm(litellm, server, "smollm2", messages=messages, temperature=0,
                           max_tokens=24, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed) == text


@pytest.mark.conformance(client="litellm", feature="context-window and rate-limit errors "
                                                   "(what its fallbacks act on)")
def test_litellm_maps_stokers_errors_to_its_own(server: Server, litellm: ModuleType) -> None:
    too_long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(litellm.ContextWindowExceededError):
        ask_litellm(litellm, server, "tiny-llama", messages=too_long, max_tokens=8)
    short = [{"role": "user", "content": "hi"}]
    ask_litellm(litellm, server, "tiny-llama", messages=short, max_tokens=2,
                api_key=QUOTA_TOKEN)
    with pytest.raises(litellm.RateLimitError):
        ask_litellm(litellm, server, "tiny-llama", messages=short, max_tokens=2,
                    api_key=QUOTA_TOKEN)


def chat_model(server: Server, **extra: Any) -> Any:
    # langsmith would try to send traces out unless told not to.
    os.environ["LANGSMITH_TRACING"] = "false"
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="smollm2", base_url=f"{server.url}/v1", api_key=TOKEN,
                      temperature=0, max_retries=0, **extra)


@pytest.mark.conformance(client="langchain-openai", feature="invoke and stream")
def test_langchain_invokes_and_streams(server: Server) -> None:
    model = chat_model(server, max_tokens=24)
    question = "What is the capital of France?"
    answer = model.invoke(question)
    assert "Paris" in str(answer.content)
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] > 0
    assert "".join(str(chunk.content) for chunk in model.stream(question)) == answer.content


class Capital(BaseModel):
    """The capital of a country."""

    city: str
    in_europe: bool


@pytest.mark.conformance(client="langchain-openai",
                         feature="with_structured_output (json_schema, constrained locally)")
def test_langchain_structured_output_is_constrained_json(server: Server) -> None:
    structured = chat_model(server, max_tokens=40).with_structured_output(
        Capital, method="json_schema")
    found = structured.invoke("What is the capital of France? Answer in JSON.")
    assert isinstance(found, Capital)
    assert found.city == "Paris"
