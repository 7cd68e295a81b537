"""Big uploads validated in a child process: the same answer as in the server, refusals
carried back, a dead child reported as retryable and replaced, and no secret in its
environment."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from stoker.api.jsonl_upload import validate_upload
from stoker.api.upload_worker import UploadWorker
from stoker.errors import Unavailable, Unprocessable
from tests.api.conftest import line


def upload(n: int, **body: object) -> bytearray:
    return bytearray("".join(json.dumps(line(f"id-{i}", prompt=f"p\u2028{i}", **body),
                                        ensure_ascii=False) + "\n"
                             for i in range(n)).encode())


def test_the_child_validates_as_the_server_would() -> None:
    data = upload(300, max_tokens=9)

    async def both() -> None:
        worker = UploadWorker()
        try:
            requests, models = await worker.validate(bytearray(data), max_requests=300)
        finally:
            await worker.close()
        here, here_models = validate_upload(bytearray(data), max_requests=300)
        assert models == here_models == {"default"}
        assert list(requests) == list(here)
        assert requests.most_tokens_asked() == here.most_tokens_asked() == 9

    asyncio.run(both())


def test_a_refusal_comes_back_and_the_child_takes_the_next_upload() -> None:
    bad = upload(3) + b'{"custom_id": "x"}\n' + upload(2)

    async def run() -> None:
        worker = UploadWorker()
        try:
            with pytest.raises(Unprocessable, match="line 4"):
                await worker.validate(bad, max_requests=10)
            with pytest.raises(Unprocessable, match="more than 5"):
                await worker.validate(upload(50), max_requests=5)  # refused part-way
            requests, _ = await worker.validate(upload(4), max_requests=10)
            assert [r.custom_id for r in requests] == [f"id-{i}" for i in range(4)]
        finally:
            await worker.close()

    asyncio.run(run())


def test_a_dead_child_is_a_retryable_error_and_is_replaced() -> None:
    async def run() -> None:
        worker = UploadWorker()
        try:
            await worker.start()
            assert worker.pid is not None
            os.kill(worker.pid, 9)
            with pytest.raises(Unavailable) as failed:
                await worker.validate(upload(20), max_requests=100)
            assert failed.value.retryable
            requests, _ = await worker.validate(upload(20), max_requests=100)
            assert len(requests) == 20
        finally:
            await worker.close()

    asyncio.run(run())


def test_the_child_holds_none_of_the_server_s_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOKER_TEAM_TOKEN_A", "tok-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")

    async def run() -> bytes:
        worker = UploadWorker()
        try:
            await worker.start()
            assert worker.pid is not None
            return Path(f"/proc/{worker.pid}/environ").read_bytes()
        finally:
            await worker.close()

    environ = asyncio.run(run())
    assert b"PATH=" in environ
    assert b"secret" not in environ


def test_a_big_upload_is_stored_through_the_child(tmp_path: Path) -> None:
    from tests.api.conftest import make_client

    for client, store in make_client(tmp_path, limits={"upload_worker_min_bytes": 0}):
        headers = {"Content-Type": "application/jsonl"}
        r = client.post("/api/jobs?cache=false", content=bytes(upload(30)), headers=headers)
        assert r.status_code == 201, r.text
        job = store.get_job(r.json()["id"])
        assert job.counts.queued == 30
        bad = client.post("/api/jobs", content=bytes(upload(2) + b"[1]\n"), headers=headers)
        assert bad.status_code == 422
        assert "line 3" in bad.json()["error"]["message"]
