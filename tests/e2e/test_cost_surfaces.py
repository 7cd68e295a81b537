"""A real run's cost report, metrics and dashboard agree with what the store recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server, prompts

pytestmark = pytest.mark.timeout(600)

ARTIFACTS = Path(os.environ.get("STOKER_TEST_ARTIFACTS",
                                Path(__file__).parent.parent.parent / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def closed_window() -> dict[str, str]:
    """A daily window that is not open now (so a job in it stays queued)."""
    now = datetime.now(UTC)
    return {"start": (now + timedelta(hours=2)).strftime("%H:00"),
            "end": (now + timedelta(hours=3)).strftime("%H:00"), "timezone": "UTC"}


def recorded(server: Server, until: float) -> dict[str, Any]:
    """Sums straight from the store's tables."""
    with server.db() as db:
        by_state: dict[str, float] = {}
        for state, start, end in db.execute("SELECT state, started_at, ended_at FROM "
                                            "runner_intervals WHERE state != 'stopped'"):
            by_state[state] = by_state.get(state, 0.0) + min(end or until, until) - start
        batches = db.execute("SELECT COUNT(*), COALESCE(SUM(ended_at - started_at), 0), "
                             "COALESCE(SUM(completion_tokens), 0), "
                             "COALESCE(SUM(prompt_tokens), 0) FROM batches").fetchone()
    return {"by_state": by_state, "batches": batches[0], "batch_s": batches[1],
            "completion_tokens": batches[2], "prompt_tokens": batches[3]}


def test_report_metrics_and_dashboard_match_the_records(
        make_server: Callable[..., Server], tiny_model_dir: Path) -> None:
    server = make_server(
        models={"tiny-llama": {"path": str(tiny_model_dir), "runner_class": "a10g"}},
        tiers={"nightly": {"priority": 30, "window": closed_window()}})
    server.start(runners=2)
    # Not from the cache: the jobs share prompts, and a cached answer runs (and costs) nothing.
    jobs = [server.submit(prompts(n, max_tokens=12), cache=False)["id"] for n in (24, 5, 40)]
    for job_id in jobs:
        server.wait_job(job_id)
    waiting = server.submit(prompts(7), tier="nightly")["id"]
    until = time.time()
    cost = httpx.get(f"{server.url}/api/cost", params={"since": 0, "until": until},
                     timeout=30).json()
    truth = recorded(server, until)

    # The report splits exactly the runner time the store recorded.
    (pool,) = cost["pools"]
    assert set(pool["seconds_by_state"]) == set(truth["by_state"])
    for state, seconds in truth["by_state"].items():
        assert pool["seconds_by_state"][state] == pytest.approx(seconds, rel=1e-6)
    total = sum(truth["by_state"].values())
    assert cost["totals"]["gpu_s"] == pytest.approx(total, rel=1e-6)
    assert cost["totals"]["attributed_gpu_s"] + cost["totals"]["unattributed_gpu_s"] == \
        pytest.approx(total, rel=0.01)
    by_job = {j["job_id"]: j for j in cost["jobs"]}
    assert set(jobs) <= set(by_job)
    assert sum(j["direct_gpu_s"] for j in by_job.values()) == pytest.approx(
        truth["batch_s"], rel=0.01)
    assert sum(j["completion_tokens"] for j in by_job.values()) == truth["completion_tokens"]
    price_per_s = 1.006 / 3600
    for job_id in jobs:
        j = by_job[job_id]
        assert j["direct_cost_usd"] == pytest.approx(j["direct_gpu_s"] * price_per_s, rel=1e-3)
        assert j["direct_cost_usd"] <= j["loaded_cost_usd"]
        assert j["counterfactual_cost_usd"] > j["direct_cost_usd"]
    assert by_job[waiting]["direct_cost_usd"] == 0

    # Waste: a tiny model on an A10G is the wrong class; the pool sat idle.
    waste = httpx.get(f"{server.url}/api/waste", params={"since": 0, "until": until},
                      timeout=30).json()
    kinds = {f["kind"]: f for f in waste["findings"]}
    assert kinds["accelerator_class"]["figure"]["suggested_class"] == "l4"

    # Prometheus text, parsed by prometheus_client's own parser.
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("stoker_queue_depth", (("model", "tiny-llama"), ("tier", "nightly")))] == 7
    assert samples[("stoker_runner_state", (("model", "tiny-llama"), ("state", "idle")))] == 2
    assert samples[("stoker_batch_size_count", (("model", "tiny-llama"),))] == truth["batches"]
    assert samples[("stoker_tokens_total", (("kind", "completion"), ("model", "tiny-llama")))] \
        == truth["completion_tokens"]
    assert samples[("stoker_job_cost_usd_total", (("team", "default"), ("tier", "batch")))] \
        == pytest.approx(sum(by_job[j]["direct_cost_usd"] for j in jobs), rel=1e-3)
    assert ("stoker_leases_expired_total", ()) in samples

    # The CLI report says the same.
    cli = subprocess.run([sys.executable, "-m", "stoker.cli", "report", "--server", server.url,
                          "--since", "0", "--json"], capture_output=True, text=True,
                         timeout=60, check=True)
    from_cli = json.loads(cli.stdout)
    assert {j["job_id"] for j in from_cli["cost"]["jobs"]} == set(by_job)
    md = subprocess.run([sys.executable, "-m", "stoker.cli", "report", "--server", server.url,
                         "--since", "0", "--markdown"], capture_output=True, text=True,
                        timeout=60, check=True).stdout
    assert md.startswith("## Stoker cost report")
    assert all(f"`{job_id}`" in md for job_id in jobs)

    show_dashboard(server, jobs)


def show_dashboard(server: Server, jobs: list[str]) -> None:
    """Load the dashboard in headless Chromium; the run's jobs and runners are on it."""
    if CHROMIUM is None:
        if os.environ.get("STOKER_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (STOKER_REQUIRE_BROWSER) but not installed")
        pytest.skip("no chromium installed (apt-get install chromium); the dashboard check "
                    "did not run")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server.url}/dashboard")
        page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
        rows = page.locator("#jobs-table tbody tr")
        shown = {rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())}
        assert set(jobs) <= shown
        assert page.locator("#timeline rect[data-state=busy]").count() >= 1
        assert page.locator("#util-chart rect[data-state=idle]").count() == 1
        assert page.locator("#team-cost rect").count() == 2
        assert page.locator("#queue-chart polyline[data-tier=nightly]").count() == 1
        assert page.locator("#findings .finding[data-kind=accelerator_class]").count() == 1
        # It updates without a reload: a second sample lands on the queue chart.
        first = page.locator("#updated").text_content()
        page.wait_for_function(f"document.getElementById('updated').textContent !== {first!r}",
                               timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000
