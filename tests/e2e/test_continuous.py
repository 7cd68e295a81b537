"""Continuous batching and token streaming with the real server, a real runner process and the
tiny model: freed slots are refilled in the same loop, leases hold through long loops, and
streamed tokens arrive while other work is still decoding."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import Server, prompts

pytestmark = pytest.mark.e2e


def completion(prompt: str, max_tokens: int, custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/completions",
            "body": {"model": "default", "prompt": prompt, "max_tokens": max_tokens,
                     "temperature": 0}}


def finished_at(server: Server, job_id: str) -> dict[str, tuple[float, int]]:
    """Each custom id's finish time and attempts, from the server's database."""
    with server.db() as db:
        rows = db.execute("SELECT custom_id, finished_at, attempts FROM requests "
                          "WHERE job_id = ?", (job_id,)).fetchall()
    return {str(c): (float(f), int(a)) for c, f, a in rows}


def test_a_finished_row_frees_its_slot_for_a_queued_request_in_the_same_loop(
        make_server: Callable[..., Server], tiny_model_dir: Path) -> None:
    # Two slots: a long row and a stream of short ones. Statically batched, each short one
    # would wait for the long row to end; continuously, they pass through the other slot.
    server = make_server(batching={"max_batch_size": 2, "max_wait_ms": 0,
                                   "online_headroom_rows": 0},
                         models={"tiny-llama": {"path": str(tiny_model_dir),
                                                "max_new_tokens": 1200}})
    server.start(runners=1)
    job = server.submit([completion("The quick brown fox", 1200, "long")]
                        + [completion(f"Question {i}?", 2, f"short-{i}") for i in range(6)])
    server.wait_job(job["id"])
    results = {r["custom_id"]: r["response"]["body"] for r in server.results(job["id"])}
    assert results["long"]["usage"]["completion_tokens"] == 1200  # it ran the whole time
    times = finished_at(server, job["id"])
    assert all(times[f"short-{i}"][0] < times["long"][0] for i in range(6))
    # The loop ran far past the 2 s lease: heartbeats kept every lease, nothing ran twice.
    assert {attempts for _, attempts in times.values()} == {1}
    with server.db() as db:
        (expired,) = db.execute(
            "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'leases_expired'"
        ).fetchone()
        spans = db.execute("SELECT started_at, ended_at FROM batches WHERE runner_id = "
                           "(SELECT runner_id FROM batches LIMIT 1) ORDER BY started_at"
                           ).fetchall()
        (fullest,) = db.execute("SELECT MAX(request_count) FROM batches").fetchone()
    assert expired == 0
    # One batch record per report, and the loop's time billed once: no two overlap.
    assert len(spans) >= 2
    # Each record's size is the rows the loop decoded together, not the rows it reported.
    assert fullest == 2
    assert all(a[1] <= b[0] + 1e-6 for a, b in itertools.pairwise(spans))


def sse_lines(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[len("data: "):]


def test_streamed_tokens_arrive_while_a_batch_job_is_still_decoding(
        make_server: Callable[..., Server]) -> None:
    server = make_server(batching={"max_batch_size": 8, "max_wait_ms": 20,
                                   "online_headroom_rows": 2})
    server.start(runners=1)
    job = server.submit(prompts(64, max_tokens=200))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Tell me a long story"}],
        max_tokens=300, temperature=0, stream=True)
    arrivals: list[tuple[float, str]] = []
    batch_done_at_first_token = None
    for chunk in stream:
        text = chunk.choices[0].delta.content if chunk.choices else None
        if text:
            if not arrivals:
                batch_done_at_first_token = server.get(f"/api/jobs/{job['id']}")["status"]
            arrivals.append((time.monotonic(), text))
    # Many pieces over time, not one lump at the end; the first while the batch decoded.
    assert len(arrivals) >= 5
    assert arrivals[-1][0] - arrivals[0][0] > 0.05
    assert batch_done_at_first_token == "running"
    plain = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Tell me a long story"}],
        max_tokens=300, temperature=0)
    assert "".join(t for _, t in arrivals) == plain.choices[0].message.content


@pytest.mark.conformance(client="anthropic", feature="messages.stream, Anthropic's events")
def test_messages_stream_as_anthropic_events_with_the_same_text(
        make_server: Callable[..., Server]) -> None:
    server = make_server()
    server.start(runners=1)
    body = {"model": "tiny-llama", "max_tokens": 40, "temperature": 0,
            "messages": [{"role": "user", "content": "Say something"}]}
    plain = httpx.post(server.url + "/v1/messages", json=body, timeout=60).json()
    events: list[dict[str, Any]] = []
    with httpx.stream("POST", server.url + "/v1/messages", json={**body, "stream": True},
                      timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(data) for data in sse_lines(response)]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == plain["content"][0]["text"]
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == plain["stop_reason"]
    assert delta["usage"]["output_tokens"] == plain["usage"]["output_tokens"]
