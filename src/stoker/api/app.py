"""The composition root: ``create_app(settings, store, clock)``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stoker import __version__
from stoker.api import access, commands, cost, jobs, pool, runners
from stoker.api.anthropic import batches as anthropic_batches
from stoker.api.anthropic import messages as anthropic_messages
from stoker.api.body import BodySizeLimit
from stoker.api.callbacks import CallbackSender
from stoker.api.dispatch import Dispatcher, LeaseTerms, Reaper
from stoker.api.errors import install_error_handlers
from stoker.api.metrics import StokerMetrics
from stoker.api.openai import batches as openai_batches
from stoker.api.openai import files as openai_files
from stoker.api.openai import online as openai_online
from stoker.api.request_ids import RequestIds
from stoker.api.scheduling import build_policy, build_tiers, online_reserve
from stoker.api.services import Services, model_revisions
from stoker.api.streams import StreamHub
from stoker.api.teams import TeamDirectory
from stoker.api.upload_worker import UploadWorker
from stoker.clock import Clock
from stoker.settings import Settings
from stoker.store import Store
from stoker.store.sql import COUNTERS
from stoker.store.sql_base import STREAM


def create_app(settings: Settings, store: Store, clock: Clock, *,
               prestart_upload_worker: bool = False) -> FastAPI:
    """The Stoker HTTP service over ``store``, with time from ``clock``. A served replica
    starts its upload worker with it (``prestart_upload_worker``); else the first big upload
    starts it."""
    leases = settings.leases
    teams = TeamDirectory(settings)
    tiers = build_tiers(settings)
    policy = build_policy(settings, tiers, teams.weights())
    dispatcher = Dispatcher(store, clock, LeaseTerms(leases.ttl_s, leases.long_poll_s), policy,
                            lambda model: settings.batching_for(model).max_batch_size,
                            reserve=lambda model: online_reserve(settings, model),
                            commands=settings.commands.enabled)
    reaper = Reaper(store, clock, dispatcher, runner_timeout_s=leases.runner_timeout_s,
                    interval_s=min(1.0, leases.ttl_s / 4))

    @contextlib.asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def hear(channel: str, payload: str) -> None:
            if channel == STREAM:
                loop.call_soon_threadsafe(streams.hear, payload)
            else:
                loop.call_soon_threadsafe(dispatcher.hear, channel, payload)

        unsubscribe = store.subscribe(hear)
        # Started beside the service, not awaited: the first big upload finds it warm.
        warming = asyncio.create_task(
            upload_worker.start() if prestart_upload_worker else asyncio.sleep(0),
            name="upload-worker")
        tasks = [asyncio.create_task(reaper.run(), name="reaper"),
                 asyncio.create_task(CallbackSender(served.state.services).run(),
                                     name="callbacks")]
        try:
            yield
        finally:
            unsubscribe()
            await warming
            await upload_worker.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    metrics = StokerMetrics(store, settings, clock)
    upload_worker = UploadWorker()
    streams = StreamHub()
    # The API's description is served by routes of our own, so that it has a lock too.
    app = FastAPI(title="Stoker", version=__version__, lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.state.services = Services(settings, store, clock, dispatcher, tiers, teams, policy,
                                  model_revisions(settings), clock.now(), metrics,
                                  upload_worker, streams)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_body_bytes)
    # Added last, so outermost: even the body limit's refusals carry a request id.
    app.add_middleware(RequestIds)
    app.include_router(jobs.router)
    app.include_router(commands.router)
    app.include_router(runners.router)
    app.include_router(pool.router)
    app.include_router(runners.protocol)
    app.include_router(openai_online.router)
    app.include_router(openai_files.router)
    app.include_router(openai_batches.router)
    app.include_router(anthropic_messages.router)
    app.include_router(anthropic_batches.router)
    app.include_router(cost.router)
    _add_ops_routes(app, store, metrics)
    return app


def _add_ops_routes(app: FastAPI, store: Store, metrics: StokerMetrics) -> None:
    """Health, metrics, counters, the dashboard page and the API's own description."""

    @app.get("/healthz", tags=["ops"], dependencies=[Depends(access.public)])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers and the store is readable. Says nothing else."""
        store.queue_depth()
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], include_in_schema=False,
             dependencies=[Depends(access.operator)])
    def prometheus() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/dashboard", tags=["ops"], include_in_schema=False,
             dependencies=[Depends(access.public)])
    def dashboard() -> HTMLResponse:
        """The live dashboard page: a static shell with no data (it reads /api/dashboard
        with the token the viewer gives it)."""
        page = resources.files("stoker.api").joinpath("static", "dashboard.html")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    @app.get("/api/counters", tags=["ops"], dependencies=[Depends(access.operator)])
    def counters() -> dict[str, int]:
        """Event counters: duplicate results, expired leases, cache hits, provider 429s."""
        return {name: store.counter(name) for name in COUNTERS}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(access.docs)])
    def openapi() -> JSONResponse:
        """The OpenAPI document of this API."""
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(access.docs)])
    def swagger() -> HTMLResponse:
        """Interactive API docs."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Stoker API")

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(access.docs)])
    def redoc() -> HTMLResponse:
        """API reference."""
        return get_redoc_html(openapi_url="/openapi.json", title="Stoker API")
