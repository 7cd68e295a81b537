"""A simulated day of an online fleet lending its idle replicas, on the live policy."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from stoker.core.lending import LendingConfig
from stoker.sim.lending import FleetDay, online_load, replay_fleet_day

SEED_FLEET = FleetDay()  # 20 replicas of 4 GPUs, busy 08:00-20:00
CONFIG = LendingConfig(requests_per_replica=32, headroom=0.25, min_serving_replicas=2,
                       lend_delay_s=300, spare_replicas=1)


def test_the_load_has_the_seeds_shape() -> None:
    night, morning, noon = (online_load(h * 3600.0, SEED_FLEET) for h in (3, 9, 14))
    assert night == SEED_FLEET.night_requests
    assert night < morning < noon == SEED_FLEET.peak_requests


def test_a_day_recovers_the_nights_idle_replicas_without_online_waiting() -> None:
    day = replay_fleet_day(SEED_FLEET, CONFIG)
    night = [lent for hour, _, _, lent in day.timeline if 1 <= hour < 7]
    noon = [lent for hour, _, _, lent in day.timeline if 12 <= hour < 16]
    # At night about 13 of 20 replicas (52 GPUs, the seed's figure) are lent; none at noon.
    assert min(night) >= 11
    assert max(noon) == 0
    # Over the day a third or more of the fleet's GPU-hours go to work that can wait, most of
    # what sat idle, and no online request waits for capacity lent out.
    assert day.lent_gpu_hours >= 0.33 * day.gpu_hours
    assert day.lent_gpu_hours <= day.idle_gpu_hours_without_lending
    assert day.waiting_request_s == 0.0
    assert all(serving >= CONFIG.min_serving_replicas for _, _, serving, _ in day.timeline)


def test_the_spare_band_stops_noise_from_lending_and_reclaiming_in_turn() -> None:
    flapping = replay_fleet_day(SEED_FLEET, replace(CONFIG, spare_replicas=0))
    banded = replay_fleet_day(SEED_FLEET, CONFIG)
    assert banded.reclaims * 3 < flapping.reclaims
    assert banded.lent_gpu_hours > 0.9 * flapping.lent_gpu_hours


def test_only_a_rush_faster_than_reclaiming_makes_online_requests_wait() -> None:
    def rush(minutes: float) -> tuple[float, set[float]]:
        fleet = replace(SEED_FLEET, peak_requests=700.0, day_start_h=8.0,
                        day_end_h=8.0 + minutes / 60, reclaim_s=120.0)
        day = replay_fleet_day(fleet, CONFIG)
        assert day.waiting_request_s_without_lending == 0.0  # the whole fleet would keep up
        over = {round(h, 1) for h, load, serving, _ in day.timeline
                if load > serving * fleet.max_running_per_replica}
        return day.waiting_request_s, over
    # From night to 700 requests and back in 30 minutes: replicas come back in time.
    assert rush(30) == (0.0, set())
    # In 6 minutes: some requests wait, only in those minutes, while replicas come back.
    waited, when = rush(6)
    assert waited > 0
    assert when <= {8.0, 8.1}


def test_the_same_seed_gives_the_same_day() -> None:
    assert replay_fleet_day(SEED_FLEET, CONFIG).as_json() == \
        replay_fleet_day(SEED_FLEET, CONFIG).as_json()


def test_the_command_reports_the_days_figures() -> None:
    done = subprocess.run([sys.executable, "-m", "stoker.cli", "simulate-lending", "--json",
                           "--replicas", "10", "--night-requests", "60", "--peak-requests",
                           "300"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    expected = replay_fleet_day(replace(SEED_FLEET, replicas=10, night_requests=60,
                                        peak_requests=300), CONFIG)
    assert json.loads(done.stdout) == expected.as_json()
    refused = subprocess.run([sys.executable, "-m", "stoker.cli", "simulate-lending",
                              "--replicas", "2", "--min-serving", "2"], capture_output=True,
                             text=True, timeout=120, check=False)
    assert refused.returncode == 1
    assert "leaves no replica to lend" in refused.stderr
