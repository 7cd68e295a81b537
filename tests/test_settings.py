"""Remote models in config: what they need, and where their keys come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker.errors import InvalidRequest
from stoker.serve import provider_keys
from stoker.settings import load_settings

SECRET = "sk-settings-test-9f8e7d"


def remote(**extra: object) -> dict[str, object]:
    return {"backend": "openai", "base_url": "https://llm.example/v1", **extra}


def test_a_remote_model_needs_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="needs base_url"):
        load_settings(data_dir=tmp_path, models={"tiny-llama": {}, "m": {"backend": "openai"}})


def test_a_local_model_takes_no_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="remote backends"):
        load_settings(data_dir=tmp_path, models={"tiny-llama": {"api_key_env": "X"}})


def test_only_http_urls_are_endpoints(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="base_url"):
        load_settings(data_dir=tmp_path,
                      models={"tiny-llama": {}, "m": remote(base_url="file:///etc/passwd")})


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M_KEY", SECRET)
    settings = load_settings(data_dir=tmp_path,
                             models={"tiny-llama": {}, "m": remote(api_key_env="M_KEY")})
    assert provider_keys(settings) == {"m": SECRET}
    assert SECRET not in repr(settings)
    assert settings.runners_for("m") == 1
    assert settings.runners_for("tiny-llama") == settings.pool.size


def test_key_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    settings = load_settings(data_dir=tmp_path,
                             models={"tiny-llama": {}, "m": remote(api_key_file=str(key_file))})
    assert provider_keys(settings) == {"m": SECRET}


def test_a_missing_key_names_the_variable_not_a_value(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_KEY", raising=False)
    settings = load_settings(data_dir=tmp_path,
                             models={"tiny-llama": {}, "m": remote(api_key_env="ABSENT_KEY")})
    with pytest.raises(InvalidRequest, match="ABSENT_KEY"):
        provider_keys(settings)


def test_an_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, models={
        "tiny-llama": {}, "m": remote(api_key_file=str(tmp_path / "nope"))})
    with pytest.raises(InvalidRequest, match="cannot read api_key_file"):
        provider_keys(settings)


def test_a_window_that_starts_when_it_ends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="open never"):
        load_settings(data_dir=tmp_path, tiers={
            "nightly": {"priority": 30, "window": {"start": "02:00", "end": "02:00"}}})


def test_starvation_may_not_promote_above_online(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="above the online tier"):
        load_settings(data_dir=tmp_path, tiers={"critical": {"priority": 150}},
                      scheduling={"starvation_ceiling_tier": "critical"})
    settings = load_settings(data_dir=tmp_path, tiers={"critical": {"priority": 150}},
                             scheduling={"starvation_ceiling_tier": "online"})
    assert settings.scheduling.starvation_ceiling_tier == "online"


def test_command_jobs_on_kubernetes_need_a_shared_checkpoint_volume(tmp_path: Path) -> None:
    pods = {"image": "stoker:dev", "server_url": "http://stoker-api:8420"}
    with pytest.raises(InvalidRequest, match=r"kubernetes\.checkpoints_claim"):
        load_settings(data_dir=tmp_path, provisioner="kubernetes", kubernetes=pods,
                      commands={"enabled": True})
    settings = load_settings(data_dir=tmp_path, provisioner="kubernetes",
                             kubernetes={**pods, "checkpoints_claim": "stoker-checkpoints"},
                             commands={"enabled": True, "checkpoint_root": "/checkpoints"})
    assert settings.checkpoint_root() == Path("/checkpoints")


def test_model_names_may_not_hold_the_command_queue_mark(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="may not contain '#'"):
        load_settings(data_dir=tmp_path, default_model="a#b", models={"a#b": {}})
