"""API errors: one hierarchy, raised anywhere in the API; `install_error_handlers` maps them (and FastAPI's
own) to an HTTP status and a plain `{"error": message}` body at the edge, and nowhere else."""

import logging

from cassandra import OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.process.logs import bound, trace_ids

log = logging.getLogger(__name__)
# Cassandra did not answer (no replica, too few replicas up for the consistency, a timeout): the request may be
# tried again; a query Cassandra refuses (InvalidRequest...) is a bug and stays a 500.
STORE_UNAVAILABLE = (NoHostAvailable, OperationTimedOut, RequestExecutionException)
REQUEST_IDS = "fastlane.ids"  # scope key: the request id and traceparent the guard gave the request


class ApiError(Exception):
    """Base of every error the API answers with a message."""

    def __init__(self, message: str) -> None:
        if len(message) > 2000:  # messages may quote the request: a huge value is not echoed whole
            message = message[:1997] + "..."
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    """The request is malformed: the message says what is wrong."""


class NotFound(ApiError):
    """The task, job or execution does not exist."""


class KeyReused(ApiError):
    """An Idempotency-Key sent again with a different request."""


class PayloadTooLarge(ApiError):
    """The request body, or the order built from it, is larger than the configured limit."""


class Unavailable(ApiError):
    """A backing service (Kafka, Cassandra) did not answer in time: nothing was changed."""


class OutcomeUnknown(ApiError):
    """The order was handed to Kafka and whether it was taken could not be learnt in time."""


HTTP_STATUS: dict[type[ApiError], int] = {
    BadRequest: 400,
    NotFound: 404,
    KeyReused: 409,
    PayloadTooLarge: 413,
    Unavailable: 503,
    OutcomeUnknown: 504,
}


def http_status(exc: ApiError) -> int:
    """The status of the nearest class in HTTP_STATUS; 500 for an ApiError none of them covers."""
    return next((HTTP_STATUS[c] for c in type(exc).__mro__ if c in HTTP_STATUS), 500)


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers `{"error": message}`; a malformed request is 400 (FastAPI would say 422)."""

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    async def on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        ids = request.scope.get(REQUEST_IDS, {})
        with bound(request_id=ids.get("request_id"), **trace_ids(ids.get("traceparent"))):
            log.warning("Cassandra did not answer", extra={"path": request.url.path, "error": str(exc)[:300]})
        headers = {"Retry-After": "1"} | (
            {"X-Request-ID": ids["request_id"], "traceparent": ids["traceparent"]} if ids else {}
        )
        message = "the job store did not answer in time; try again"
        return JSONResponse({"error": message}, status_code=503, headers=headers)

    for kind in STORE_UNAVAILABLE:
        app.add_exception_handler(kind, on_store_unavailable)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this outside the middlewares (the request's log context and answer headers are gone):
        # the ids the guard noted in the scope are bound and answered again here, so the line can be found.
        ids = request.scope.get(REQUEST_IDS, {})
        with bound(request_id=ids.get("request_id"), **trace_ids(ids.get("traceparent"))):
            log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        headers = {"X-Request-ID": ids["request_id"], "traceparent": ids["traceparent"]} if ids else None
        return JSONResponse({"error": "internal error; it was logged"}, status_code=500, headers=headers)
