"""Who is running: the repository, pull request and commit a CI system names in its variables
(GitHub Actions, GitLab CI), and what a run derives from them: the job's idempotency key (the
same commit's run is not submitted twice) and its concurrency group (a newer commit of the
same pull request supersedes the older run)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CiIdentity:
    """What CI says of the run (None where it says nothing)."""

    repository: str | None = None
    pull_request: str | None = None
    commit: str | None = None

    def idempotency_key(self, suite: str, tier: str | None) -> str | None:
        """``eval:<suite>:<tier>:<repository>@<commit>``, when the commit is known."""
        if self.commit is None:
            return None
        return f"eval:{suite}:{tier or '-'}:{self.repository or '-'}@{self.commit}"[:256]

    def concurrency_group(self, suite: str) -> str | None:
        """``eval:<suite>:<repository>#<pull request>``, when a pull request is known."""
        if self.pull_request is None:
            return None
        return f"eval:{suite}:{self.repository or '-'}#{self.pull_request}"[:256]


def ci_identity(env: Mapping[str, str]) -> CiIdentity:
    """The identity in GitHub Actions' or GitLab CI's variables (empty outside CI)."""
    if env.get("GITHUB_ACTIONS") == "true":
        match = re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", env.get("GITHUB_REF", ""))
        return CiIdentity(env.get("GITHUB_REPOSITORY"), match.group(1) if match else None,
                          env.get("GITHUB_SHA"))
    if env.get("GITLAB_CI") == "true":
        return CiIdentity(env.get("CI_PROJECT_PATH"), env.get("CI_MERGE_REQUEST_IID"),
                          env.get("CI_COMMIT_SHA"))
    return CiIdentity()
