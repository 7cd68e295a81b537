"""The run's identity from CI variables."""

from __future__ import annotations

from stoker.evals.ci import CiIdentity, ci_identity


def test_github_pull_request() -> None:
    who = ci_identity({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/app",
                       "GITHUB_REF": "refs/pull/42/merge", "GITHUB_SHA": "abc123"})
    assert who == CiIdentity("acme/app", "42", "abc123")
    assert who.idempotency_key("smoke-suite", "smoke") == "eval:smoke-suite:smoke:acme/app@abc123"
    assert who.concurrency_group("smoke-suite") == "eval:smoke-suite:acme/app#42"


def test_github_push_has_no_pull_request_and_so_no_group() -> None:
    who = ci_identity({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/app",
                       "GITHUB_REF": "refs/heads/main", "GITHUB_SHA": "abc123"})
    assert who.pull_request is None
    assert who.concurrency_group("s") is None


def test_gitlab_merge_request() -> None:
    who = ci_identity({"GITLAB_CI": "true", "CI_PROJECT_PATH": "acme/app",
                       "CI_MERGE_REQUEST_IID": "7", "CI_COMMIT_SHA": "def456"})
    assert who == CiIdentity("acme/app", "7", "def456")


def test_outside_ci_nothing_is_derived() -> None:
    who = ci_identity({})
    assert who.idempotency_key("s", None) is None
    assert who.concurrency_group("s") is None
