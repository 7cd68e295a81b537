"""What-if sweeps: the same trace under every combination of a few config values, and the
cheapest combination that meets each tier's wait target.

A sweep names a config key and its values: ``pool.max_runners=2..8`` (a range of integers),
``batching.max_wait_ms=200,500,2000`` (a list). ``pool.<field>`` sets that autoscaler field
of every autoscaled model (``pool.size`` where none is), ``batching.<field>`` the batching of
every model; any other dotted key is a path in the config file (``models.llama.runners``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from stoker.settings_pool import AutoscaleSettings
from stoker.sim.results import Summary


@dataclass(frozen=True, slots=True)
class Sweep:
    """One config key and the values it takes."""

    key: str
    values: tuple[Any, ...]


def parse_sweep(text: str) -> Sweep:
    """``KEY=A..B`` or ``KEY=V1,V2,...``; ValueError saying what is wrong."""
    key, sep, spec = text.partition("=")
    if not sep or not key or not spec:
        raise ValueError(f"a sweep is KEY=A..B or KEY=V1,V2,…, got {text!r}")
    if ".." in spec:
        low, _, high = spec.partition("..")
        try:
            start, stop = int(low), int(high)
        except ValueError:
            raise ValueError(f"sweep {text!r}: a range A..B takes integers") from None
        if stop < start:
            raise ValueError(f"sweep {text!r}: the range is empty")
        return Sweep(key, tuple(range(start, stop + 1)))
    return Sweep(key, tuple(yaml.safe_load(v) for v in spec.split(",")))


def combinations(sweeps: Sequence[Sweep]) -> list[dict[str, Any]]:
    """Every combination of the sweeps' values (one empty one without sweeps)."""
    return [dict(zip([s.key for s in sweeps], values, strict=True))
            for values in itertools.product(*(s.values for s in sweeps))]


def apply(raw: Mapping[str, Any], setting: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw config with ``setting``'s keys set (see the module)."""
    config: dict[str, Any] = copy.deepcopy(dict(raw))
    models = config.setdefault("models", {}) or {}
    for key, value in setting.items():
        head, _, field = key.partition(".")
        if head == "pool" and field in AutoscaleSettings.model_fields:
            scaled = [m for m in models.values() if isinstance(m, dict) and m.get("autoscale")]
            if not scaled:
                raise ValueError(f"sweep {key}: no model in the config is autoscaled")
            for spec in scaled:
                spec["autoscale"][field] = value
        elif head == "batching" and field:
            config.setdefault("batching", {})[field] = value
            for spec in models.values():
                if isinstance(spec, dict) and spec.get("batching"):
                    spec["batching"][field] = value
        else:
            _set_path(config, key.split("."), value)
    return config


def _set_path(config: dict[str, Any], path: list[str], value: Any) -> None:
    node = config
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"sweep {'.'.join(path)}: {part} is not a section of the config")
        node = child
    node[path[-1]] = value


@dataclass(frozen=True, slots=True)
class Point:
    """One combination and what the simulation made of it."""

    setting: Mapping[str, Any]
    summary: Summary


def p95_wait(point: Point, tier: str) -> float | None:
    """The combination's p95 queue wait in ``tier`` (None: no work in it)."""
    times = point.summary.tier(tier)
    return times.queue_wait.p95_s if times else None


def meets(point: Point, targets: Mapping[str, float]) -> dict[str, bool]:
    """Per tier with a target: whether its p95 wait is within it (and nothing unfinished)."""
    done = point.summary.unfinished_requests == 0
    found = {}
    for tier, target in targets.items():
        wait = p95_wait(point, tier)
        if wait is not None:
            found[tier] = done and wait <= target
    return found


def frontier(points: Sequence[Point], tiers: Sequence[str]) -> list[Point]:
    """The combinations no other beats on cost and on every tier's p95 wait at once."""
    def key(p: Point) -> tuple[float, ...]:
        return (p.summary.cost_usd, *[p95_wait(p, t) or 0.0 for t in tiers],
                float(p.summary.unfinished_requests))

    def dominated(p: Point) -> bool:
        mine = key(p)
        return any(all(a <= b for a, b in zip(key(q), mine, strict=True)) and key(q) != mine
                   for q in points)

    return sorted((p for p in points if not dominated(p)), key=lambda p: p.summary.cost_usd)


def cheapest_meeting(points: Sequence[Point], targets: Mapping[str, float]
                     ) -> dict[str, Point | None]:
    """Per tier: the cheapest combination whose p95 wait meets the tier's target."""
    found: dict[str, Point | None] = {}
    for tier in targets:
        ok = [p for p in points if meets(p, {tier: targets[tier]}).get(tier)]
        found[tier] = min(ok, key=lambda p: p.summary.cost_usd) if ok else None
    return found
