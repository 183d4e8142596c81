"""The FastAPI application: routes, error mapping, lifespan."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.deps import Backends, bootstrap
from services.api.errors import ApiError
from services.api.ops import router as ops_router
from services.api.routes import router
from services.api.schemas import JobSpec
from services.api.security import auth_middleware, body_limit_middleware
from shared.process.settings import ApiSettings

log = logging.getLogger(__name__)


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed: the job definition that POST and PUT read by hand, and 400 (with our
    error body) where FastAPI would announce its 422 (this API answers 400 for every malformed request)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    job_spec = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(job_spec.pop("$defs", {}))
    components["JobSpec"] = job_spec
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path in schema["paths"].values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {
                    "description": "the request is malformed; the message says how",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }
    app.openapi_schema = schema
    return schema


def create_app(settings: ApiSettings, make_backends: Callable[[ApiSettings], Backends] = bootstrap) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = await run_in_threadpool(make_backends, settings)
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
    )
    app.include_router(router)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    app.include_router(ops_router)
    # Outermost last: CORS answers preflights before auth; gzip wraps every answer.
    app.middleware("http")(body_limit_middleware(settings))
    app.middleware("http")(auth_middleware(settings))
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["*"],
    )

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
