"""Checks across settings sections that no one section can make alone: tiers named exist,
the starvation ceiling stays under online traffic, runner classes exist, lending fleets can
lend. Each raises InvalidRequest with what to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stoker.accounting.prices import DEFAULT_RUNNER_CLASSES
from stoker.core.tiers import DEFAULT_TIERS
from stoker.errors import InvalidRequest

if TYPE_CHECKING:
    from stoker.settings import Settings


def check_settings(settings: Settings) -> None:
    """Every cross-section check."""
    _check_policy(settings)
    _check_provisioner(settings)
    _check_lending(settings)
    _check_commands(settings)


def _check_commands(settings: Settings) -> None:
    reserved = sorted(m for m in settings.models if "#" in m)
    if reserved:
        raise InvalidRequest(f"model names may not contain '#' (it names command queues): "
                             f"{', '.join(reserved)}")
    if settings.commands.default_grace_s > settings.commands.max_grace_s:
        raise InvalidRequest("commands.default_grace_s is past commands.max_grace_s")
    pods = settings.kubernetes
    if settings.commands.enabled and settings.provisioner == "kubernetes" and pods is not None:
        # A run's checkpoint must outlive its pod: the next run may be in another one.
        root = settings.commands.checkpoint_root
        if pods.checkpoints_claim is None or root is None \
                or str(root) != pods.checkpoints_mount_path:
            raise InvalidRequest(
                "command jobs on Kubernetes keep checkpoints on a shared volume: set "
                "kubernetes.checkpoints_claim (a ReadWriteMany claim) and "
                "commands.checkpoint_root to kubernetes.checkpoints_mount_path "
                f"({pods.checkpoints_mount_path})")


def _check_policy(settings: Settings) -> None:
    tiers = set(settings.tiers) | {t.name for t in DEFAULT_TIERS}
    named = [settings.scheduling.default_tier, settings.scheduling.starvation_ceiling_tier,
             settings.scheduling.online_tier, settings.scheduling.flex_tier]
    named += [t for team in settings.teams.values() for t in team.tiers or []]
    named += [team.sync_tier for team in settings.teams.values()]
    unknown = sorted({t for t in named if t is not None and t not in tiers})
    if unknown:
        raise InvalidRequest(f"unknown tiers named in config: {', '.join(unknown)}; "
                             f"tiers: {', '.join(sorted(tiers))}")
    _check_ceiling(settings)
    classes = set(settings.runner_classes) | {c.name for c in DEFAULT_RUNNER_CLASSES}
    unknown_classes = sorted({m.runner_class for m in settings.models.values()} - classes)
    if unknown_classes:
        raise InvalidRequest(f"unknown runner_class in models: {', '.join(unknown_classes)}; "
                             f"classes: {', '.join(sorted(classes))}")
    if settings.teams and settings.runner_token is None:
        raise InvalidRequest("with teams configured, set runner_token too, so that runner "
                             "endpoints are not open to every caller")


def _check_lending(settings: Settings) -> None:
    for name, fleet in settings.lending.items():
        spec = settings.models.get(fleet.model)
        if spec is None or spec.backend != "openai":
            raise InvalidRequest(f"lending.{name}.model {fleet.model!r} must be a model with "
                                 "backend: openai (its runners call the lent replicas' API)")
        if fleet.min_serving_replicas >= len(fleet.replicas):
            raise InvalidRequest(f"lending.{name}: min_serving_replicas "
                                 f"({fleet.min_serving_replicas}) leaves none of its "
                                 f"{len(fleet.replicas)} replicas to lend")


def _check_provisioner(settings: Settings) -> None:
    if settings.provisioner == "kubernetes" and settings.kubernetes is None:
        raise InvalidRequest("provisioner: kubernetes needs a kubernetes section (namespace, "
                             "image, server_url); see deploy/kubernetes/")


def _check_ceiling(settings: Settings) -> None:
    """Starved work may be promoted, but never above online traffic."""
    sched = settings.scheduling
    if sched.starvation_ceiling_tier is None:
        return
    priorities = {t.name: t.priority for t in DEFAULT_TIERS}
    priorities.update({name: t.priority for name, t in settings.tiers.items()})
    ceiling, online = priorities[sched.starvation_ceiling_tier], priorities[sched.online_tier]
    if ceiling > online:
        raise InvalidRequest(
            f"scheduling.starvation_ceiling_tier {sched.starvation_ceiling_tier!r} (priority "
            f"{ceiling}) ranks above the online tier {sched.online_tier!r} (priority {online}); "
            "starved work is never promoted above online traffic: name a tier at or below it")
