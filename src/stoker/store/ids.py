"""Identifiers and calendar keys the store hands out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_id(prefix: str) -> str:
    """A fresh identifier such as ``job_3f2a…``."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def utc_day(now: float) -> str:
    """The UTC calendar day of ``now``, as usage is counted per day."""
    return datetime.fromtimestamp(now, UTC).date().isoformat()
