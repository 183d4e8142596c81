"""The FastAPI application: routes, error mapping, lifespan."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.deps import Backends, bootstrap
from services.api.errors import ApiError
from services.api.routes import router
from shared.settings import ApiSettings

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings, make_backends: Callable[[ApiSettings], Backends] = bootstrap) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = await run_in_threadpool(make_backends, settings)
        log.info("api ready", extra={"port": settings.api_port})
        try:
            yield
        finally:
            app.state.backends.close()

    app = FastAPI(title="fastlane", version="0.1.0", lifespan=lifespan, redirect_slashes=False)
    app.include_router(router)

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"error": "internal error; it was logged"}, status_code=500)

    return app
