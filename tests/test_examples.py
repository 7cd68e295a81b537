"""The examples the README points at stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker.api.jsonl_upload import validate_upload
from stoker.settings import load_settings

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLES / "stoker.yaml")
    assert settings.default_model == "tiny-llama"
    assert settings.batching.max_batch_size == 16
    assert settings.tiers["regression"].window is not None


def test_example_teams_block_loads() -> None:
    import yaml

    text = (EXAMPLES / "stoker.yaml").read_text()
    uncommented = "\n".join(line.replace("# ", "", 1) if line.startswith(("# runner_token",
                             "# teams", "#   ", "# circuit_breaker")) else line
                             for line in text.splitlines())
    raw = yaml.safe_load(uncommented)
    assert set(raw["teams"]) == {"ml-evals", "pipelines"}
    settings = load_settings(None, **raw)
    assert settings.teams["ml-evals"].quotas.requests_per_minute == 600


def test_example_job_is_valid() -> None:
    requests, _ = validate_upload(bytearray((EXAMPLES / "job.jsonl").read_bytes()),
                                  max_requests=10)
    assert [r.custom_id for r in requests] == ["q0", "q1", "q2", "raw-1"]


def test_without_teams_only_loopback_is_allowed() -> None:

    from stoker.errors import InvalidRequest

    assert load_settings(host="::1").host == "::1"
    with pytest.raises(InvalidRequest, match="loopback"):
        load_settings(host="0.0.0.0")


def test_bad_config_is_a_readable_error(tmp_path: Path) -> None:

    from stoker.errors import InvalidRequest

    bad = tmp_path / "bad.yaml"
    bad.write_text("batching: {max_batch_size: 0}\nsurprise: 1\n")
    with pytest.raises(InvalidRequest, match=r"batching.max_batch_size.*surprise"):
        load_settings(bad)


def test_the_ci_examples_run_the_shipped_suite_with_a_baseline() -> None:
    import yaml

    github = yaml.safe_load((EXAMPLES / "ci" / "github-actions.yml").read_text())
    action = yaml.safe_load((EXAMPLES / "ci" / "stoker-eval" / "action.yml").read_text())
    [smoke] = [s["with"] for s in github["jobs"]["smoke"]["steps"]
               if s.get("uses") == "./.github/actions/stoker-eval"]
    [nightly] = [s["with"] for s in github["jobs"]["nightly"]["steps"]
                 if s.get("uses") == "./.github/actions/stoker-eval"]
    assert (smoke["suite"], smoke["tier"], smoke["baseline"]) == (
        "examples/evals/smollm2_smoke.yaml", "smoke", "main")
    assert (nightly["tier"], nightly["name"]) == ("regression", "main")
    # Every input the workflow passes is one the composite action declares.
    assert set(smoke) | set(nightly) <= set(action["inputs"])
    assert action["runs"]["using"] == "composite"
    gitlab = yaml.safe_load((EXAMPLES / "ci" / "gitlab-ci.yml").read_text())
    assert "stoker eval run examples/evals/smollm2_smoke.yaml" in " ".join(
        gitlab["evals:smoke"]["script"])
    assert "--baseline main" in " ".join(gitlab["evals:smoke"]["script"])
    assert "--name main" in " ".join(gitlab["evals:nightly"]["script"])
    assert (EXAMPLES / "evals" / "smollm2_smoke.yaml").is_file()
