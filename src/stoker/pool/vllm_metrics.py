"""A vLLM replica's load, read from its Prometheus ``/metrics``.

vLLM exposes gauges ``vllm:num_requests_running``, ``vllm:num_requests_waiting`` and the KV
cache's use, ``vllm:kv_cache_usage_perc`` (0 to 1; called ``vllm:gpu_cache_usage_perc`` before
the V1 engine), one sample per engine and model. Running and waiting are summed over them, the
KV cache's use is the fullest engine's. The text is parsed with ``prometheus_client``'s parser.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stoker.core.lending import ReplicaLoad

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


class NotVllmMetrics(ValueError):
    """The text parsed, but it is not a vLLM server's (no scheduler gauges)."""


def replica_load(name: str, text: str) -> ReplicaLoad:
    """The load a replica's metrics text reports. Raises ValueError for text that is not
    Prometheus exposition, NotVllmMetrics for metrics without vLLM's scheduler gauges."""
    sums: dict[str, float] = {}
    kv: dict[str, float] = {}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:
        raise ValueError(f"{name}: not Prometheus text ({exc})") from None
    for sample in samples:
        if sample.name in (RUNNING, WAITING):
            sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
        elif sample.name in KV_CACHE:
            kv[sample.name] = max(kv.get(sample.name, 0.0), float(sample.value))
    if RUNNING not in sums or WAITING not in sums:
        raise NotVllmMetrics(f"{name}: no {RUNNING} / {WAITING} in its metrics")
    usage = next((kv[k] for k in KV_CACHE if k in kv), 0.0)
    return ReplicaLoad(name, running=sums[RUNNING], waiting=sums[WAITING],
                       kv_cache_usage=usage)


def scrape_replica(client: httpx.Client, name: str, base_url: str) -> tuple[ReplicaLoad,
                                                                          str | None]:
    """The replica's load from ``base_url``/metrics, and why it could not be read (the load
    is then ``reachable=False``)."""
    try:
        response = client.get(base_url.rstrip("/") + "/metrics")
        response.raise_for_status()
        return replica_load(name, response.text), None
    except httpx.HTTPError as exc:
        return ReplicaLoad(name, reachable=False), f"{type(exc).__name__}: {exc}"
    except ValueError as exc:
        return ReplicaLoad(name, reachable=False), f"unreadable metrics: {exc}"
