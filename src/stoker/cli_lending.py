"""`stoker simulate-lending`: a day of an online fleet lending its idle replicas, simulated on
the live lending policy, before an operator turns lending on."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

_out = Console()
_err = Console(stderr=True)


def simulate_lending(
    replicas: Annotated[int, typer.Option(min=2, help="replicas in the fleet")] = 20,
    gpus_per_replica: Annotated[int, typer.Option(min=1)] = 4,
    night_requests: Annotated[float, typer.Option(min=0, help="running requests at night")]
    = 150.0,
    peak_requests: Annotated[float, typer.Option(min=0, help="running requests at the peak")]
    = 560.0,
    day_start_h: Annotated[float, typer.Option(min=0, max=24)] = 8.0,
    day_end_h: Annotated[float, typer.Option(min=0, max=24)] = 20.0,
    noise: Annotated[float, typer.Option(min=0, max=1, help="relative noise per scrape")]
    = 0.1,
    max_running_per_replica: Annotated[float, typer.Option(
        min=1, help="requests a replica runs at once (the rest wait)")] = 48.0,
    requests_per_replica: Annotated[float, typer.Option(
        min=1, help="running requests a replica serves within its target")] = 32.0,
    headroom: Annotated[float, typer.Option(min=0)] = 0.25,
    min_serving: Annotated[int, typer.Option(min=1)] = 2,
    spare: Annotated[int, typer.Option(min=0, help="replicas kept beyond the need")] = 1,
    lend_delay_s: Annotated[float, typer.Option(min=0)] = 300.0,
    lend_step: Annotated[int, typer.Option(min=1)] = 1,
    scrape_s: Annotated[float, typer.Option(min=1)] = 15.0,
    reclaim_s: Annotated[float, typer.Option(min=0, help="a reclaimed replica serves again "
                                                          "after this")] = 30.0,
    seed: int = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Simulate a day (the seed's shape: a night floor, a day peak) of a fleet lending its idle
    replicas: GPU-hours recovered, loans and reclaims, online requests made to wait."""
    from stoker.core.lending import LendingConfig
    from stoker.sim.lending import FleetDay, replay_fleet_day

    if min_serving >= replicas:
        _err.print("[red]error:[/red] --min-serving leaves no replica to lend")
        raise typer.Exit(1)
    day = FleetDay(replicas, gpus_per_replica, night_requests, peak_requests, day_start_h,
                   day_end_h, noise, max_running_per_replica, scrape_s, reclaim_s, seed)
    config = LendingConfig(requests_per_replica, headroom, min_serving, 0.0, 0.85,
                           lend_delay_s, lend_step, spare)
    result = replay_fleet_day(day, config)
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), indent=2) + "\n")
        return
    table = Table(title="One simulated day, hour by hour")
    for column in ("hour", "online load", "serving", "lent"):
        table.add_column(column, justify="right")
    per_hour = max(1, round(3600 / scrape_s))
    for hour, load, serving, lent in result.timeline[::per_hour]:
        table.add_row(f"{hour:02.0f}:00", f"{load:.0f}", str(serving), str(lent))
    _out.print(table)
    figures = result.as_json()
    _out.print(f"GPU-hours lent (recovered): {figures['lent_gpu_hours']:.0f} of "
               f"{figures['gpu_hours']:.0f} ({figures['lent_share']:.0%}); idle without "
               f"lending: {figures['idle_gpu_hours_without_lending']:.0f}")
    _out.print(f"loans {figures['loans']}, reclaims {figures['reclaims']}; online requests "
               f"waiting: {figures['waiting_request_s']:.0f} request-s (without lending "
               f"{figures['waiting_request_s_without_lending']:.0f})")
