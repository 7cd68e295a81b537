"""Lending an external fleet's idle replica, end to end: `stoker serve` scrapes two replayed
vLLM replicas, lends the idle one by starting a runner that sends a batch job's work to that
replica's OpenAI API, takes it back when the service's load rises (the job waits, nothing
lost), lends it again at night, and the job finishes with every request answered once.

vLLM cannot run here: the replicas' /metrics are replayed (tests/pool/vllm_replay.py) and
their /v1 is forwarded to the same Stoker server's tiny model, so every answer is a real
forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, wait_until
from tests.pool.vllm_replay import Frame, replayed_fleet

pytestmark = pytest.mark.timeout(300)

NIGHT = {"r0": Frame((1,), (0,), (0.05,)), "r1": Frame((0,), (0,), (0.0,))}
RUSH = {"r0": Frame((6,), (3,), (0.6,)), "r1": Frame((0,), (0,), (0.0,))}


def fleet_runners(server: Server) -> list[dict[str, Any]]:
    return [r for r in server.runners() if r["model"] == "fleet-chat"]


def lending_decisions(server: Server) -> list[dict[str, Any]]:
    found = server.get("/api/dashboard?window_s=3600")["pool_decisions"]
    return [d for d in found if d["model"] == "lending:chat"]


def test_an_idle_replica_is_lent_taken_back_under_load_and_nothing_is_lost(
        make_server: Callable[..., Server], tiny_model_dir: Any) -> None:
    with replayed_fleet([NIGHT, RUSH]) as fleet:
        server = make_server(
            models={"tiny-llama": {"path": str(tiny_model_dir)},
                    "fleet-chat": {"backend": "openai", "base_url": fleet.replica_url("r0") +
                                   "/v1", "remote_model": "tiny-llama", "max_concurrency": 4,
                                   "batching": {"max_batch_size": 4, "max_wait_ms": 50}}},
            lending={"chat": {"model": "fleet-chat", "requests_per_replica": 4,
                              "spare_replicas": 0,
                              "replicas": {"r0": {"url": fleet.replica_url("r0")},
                                           "r1": {"url": fleet.replica_url("r1")}},
                              "lend_delay_s": 0.3, "interval_s": 0.2, "reclaim_grace_s": 10}})
        fleet.forward_to = server.url
        server.start(runners=1)
        # Night: r0's trickle needs one replica; after the calm delay r1 is lent.
        [lent] = wait_until(lambda: [r for r in fleet_runners(server) if r["state"] == "idle"],
                            timeout_s=60, what="a runner on the lent replica")
        assert lent["name"].startswith("local-fleet-chat-r1-")
        [status] = server.get("/api/pool")["lending"]
        assert (status["fleet"], status["lent"], status["needed"]) == ("chat", ["r1"], 1)
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'stoker_lending_lent_replica{fleet="chat",replica="r1"} 1.0' in metrics
        requests = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"model": "fleet-chat", "max_tokens": 24, "temperature": 0,
                              "messages": [{"role": "user", "content": f"Tell me about {i}"}]}}
                    for i in range(40)]
        job = server.submit(requests, tier="best_effort")
        wait_until(lambda: server.get(f"/api/jobs/{job['id']}")["request_counts"]["succeeded"]
                   >= 4, timeout_s=60, what="the lent replica to answer some of the job")
        # The morning rush on r0: r1 is taken back; its runner finishes its batch and goes.
        fleet.step = 1
        wait_until(lambda: not fleet_runners(server), timeout_s=60,
                   what="the lent replica's runner to be stopped")
        paused = server.get(f"/api/jobs/{job['id']}")["request_counts"]
        assert paused["failed"] == 0
        assert paused["succeeded"] + paused["queued"] == 40  # the rest waits in the queue
        assert paused["queued"] > 0
        [reclaim] = [d for d in lending_decisions(server) if d["stopped"]]
        assert reclaim["stopped"] == ["r1"]
        assert reclaim["reason"] == "pressure"
        assert "r0 has 3 requests waiting" in reclaim["signals"]["detail"]
        # Night again: r1 is lent again and the job finishes.
        fleet.step = 0
        done = server.wait_job(job["id"], timeout_s=120)
        assert done["request_counts"]["succeeded"] == 40
        lines = server.results(job["id"])
        assert sorted(x["custom_id"] for x in lines) == sorted(f"q{i}" for i in range(40))
        assert all(x["response"]["status_code"] == 200 for x in lines)
        # All of it went to the lent replica; none to the one serving the online service.
        assert fleet.forwarded.get("r1", 0) >= 40
        assert "r0" not in fleet.forwarded
        lends = [d for d in lending_decisions(server) if d["started"]]
        assert len(lends) >= 2
        assert lends[0]["signals"]["lend"] == ["r1"]
