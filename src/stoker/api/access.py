"""Who may call each route: every route declares one access rule, as a dependency.

- ``public``: anyone; only health and the dashboard's static page, which holds no data.
- ``client``: a team's token once teams exist (jobs, files, batches, online calls).
- ``runner``: the runner token (the runner protocol).
- ``operator``: the operator token once teams exist (the runner list, drain, counters,
  metrics, and the API's own description unless ``api_docs_public``).
- ``viewer``: a team (its own costs) or the operator (everyone's).

With no teams configured the API listens on loopback only and every caller is the team
``default``: the operator routes are open there unless an operator token is set. Once teams
exist, an operator route with no operator token configured is closed to everyone.
"""

from __future__ import annotations

from fastapi import Request

from stoker.api.services import (
    bearer_matches,
    client_team,
    require_runner,
    services,
)
from stoker.errors import Forbidden, Unauthorized


def public(request: Request) -> None:
    """Open to any caller."""


def client(request: Request) -> None:
    """A team's token (once teams are configured)."""
    client_team(request)


def runner(request: Request) -> None:
    """The runner token (when one is configured)."""
    require_runner(request)


def operator(request: Request) -> None:
    """The operator token once teams exist (or whenever one is configured)."""
    svc = services(request)
    expected = svc.settings.operator_token
    if expected is None:
        if svc.teams.configured:
            raise Forbidden("this endpoint is for the operator, and no operator_token is "
                            "configured; set operator_token in the server's config")
        return
    if not bearer_matches(request, expected.get_secret_value()):
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <operator token>'")


def viewer(request: Request) -> None:
    """The operator, or any team (which then sees only its own)."""
    svc = services(request)
    expected = svc.settings.operator_token
    if expected is not None and bearer_matches(request, expected.get_secret_value()):
        return
    client_team(request)


def docs(request: Request) -> None:
    """The OpenAPI document and docs pages: the operator's, unless configured public."""
    if not services(request).settings.api_docs_public:
        operator(request)


RULES = (public, client, runner, operator, viewer, docs)
