"""The FastAPI application: middlewares, the resource routers, error mapping, and the lifespan that builds the
backends (services/api/bootstrap.py) at start-up and closes them at shutdown."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from starlette.concurrency import run_in_threadpool

from services.api.bootstrap import Backends, bootstrap
from services.api.errors import install_error_handlers
from services.api.openapi import openapi_schema
from services.api.routers import ROUTERS
from services.api.security import GuardMiddleware
from shared.process.settings import ApiSettings

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings, make_backends: Callable[[ApiSettings], Backends] = bootstrap) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = await run_in_threadpool(make_backends, settings)
        app.state.backends.start(asyncio.get_running_loop())
        log.info("api ready", extra={"port": settings.api_port})
        try:
            yield
        finally:
            app.state.backends.close()

    app = FastAPI(
        title="fastlane",
        version="0.1.0",
        description="An HTTP job queue whose workers are containers.",
        lifespan=lifespan,
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry hooks stay off: fastlane exports no telemetry, and asking whether a provider
        # is configured costs every request a few percent of its time.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    # Outermost last: CORS answers preflights before auth; gzip wraps every answer.
    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["*"],
    )
    install_error_handlers(app)
    return app
