"""How the x-ratelimit-reset-* durations are written: as OpenAI writes them."""

from __future__ import annotations

import pytest

from stoker.api.rate_limit_headers import duration


@pytest.mark.parametrize(("seconds", "written"), [
    (0.0, "0ms"), (0.2501, "251ms"), (1.0, "1s"), (59.2, "1m0s"), (360.0, "6m0s"),
    (3725.0, "1h2m5s")])
def test_durations(seconds: float, written: str) -> None:
    assert duration(seconds) == written
