"""The base of every settings section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    # A typo in a config file is an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)
