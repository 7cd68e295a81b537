"""Named SQL: queries from ``queries.sql`` and versioned migrations per dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


#: Queries only a dialect's own store code runs.
DIALECT_ONLY: dict[str, set[str]] = {"postgresql": {"lease_batch", "runner_done_with_batch"}}

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _parse(filename: str) -> dict[str, str]:
    folder = resources.files("stoker.store")
    text = folder.joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: body.strip().rstrip(";")
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def load_queries(dialect: str = "sqlite") -> dict[str, str]:
    """Every named query of ``queries.sql``, with the dialect's overrides from
    ``queries_<dialect>.sql`` where it has any, in the dialect's parameter style.

    A dialect file may also hold queries of its own, for operations its store runs another
    way (PostgreSQL's one-statement lease); those are named in ``DIALECT_ONLY``."""
    queries = _parse("queries.sql")
    if resources.files("stoker.store").joinpath(f"queries_{dialect}.sql").is_file():
        overrides = _parse(f"queries_{dialect}.sql")
        unknown = set(overrides) - set(queries) - DIALECT_ONLY.get(dialect, set())
        if unknown:
            raise ValueError(f"overrides for unknown queries: {sorted(unknown)}")
        queries.update(overrides)
    if dialect == "postgresql":
        queries = {k: _PARAM.sub(r"%(\1)s", v) for k, v in queries.items()}
    return queries


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
