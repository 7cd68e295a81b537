"""Named SQL: queries from ``queries.sql`` and versioned migrations per dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries() -> dict[str, str]:
    """Every named query of ``queries.sql``, keyed by name."""
    text = resources.files("stoker.store").joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: body.strip().rstrip(";")
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned schema change."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations for ``dialect`` in version order (files named ``NNNN_name.sql``)."""
    folder = resources.files("stoker.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            sql = entry.read_text(encoding="utf-8")
            found.append(Migration(int(version), rest.removesuffix(".sql"), sql))
    return sorted(found, key=lambda m: m.version)
