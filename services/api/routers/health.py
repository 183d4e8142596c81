"""The probes, open without auth: `/healthcheck` (the seed's: 200 when Kafka and Cassandra answer, 500 listing
what does not), `/healthz` (liveness: the process answers), `/readyz` (readiness: 503 while Kafka or Cassandra
does not answer), and `/metrics` (Prometheus; shared/process/metrics.py)."""

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from services.api.deps import BackendsDep
from services.api.models import Alive, Health, Readiness
from shared.infra.probes import cassandra_answers, kafka_answers
from shared.process.metrics import exposition

log = logging.getLogger(__name__)
router = APIRouter()


async def check(name: str, probe: Callable[[], None], timeout: float) -> str | None:
    """None when the service answered within `timeout`, else what went wrong."""
    try:
        await asyncio.wait_for(run_in_threadpool(probe), timeout + 0.5)
        return None
    except TimeoutError:
        return f"{name}: no answer within {timeout:g}s"
    except Exception as exc:
        return f"{name}: {exc}"


async def unanswered(backends: BackendsDep) -> list[str]:
    settings, session = backends.settings, backends.session
    timeout = settings.healthcheck_timeout_s
    kafka, cassandra = await asyncio.gather(
        check("kafka", lambda: kafka_answers(settings.kafka_bootstrap, timeout), timeout),
        check("cassandra", lambda: cassandra_answers(session, timeout), timeout),
    )
    return [e for e in (kafka, cassandra) if e]


@router.get("/healthz", summary="Liveness: 200 while the process answers (asks no backing service)")
async def healthz() -> Alive:
    return Alive(alive=True)


@router.get(
    "/readyz",
    summary="Readiness: 200 when Kafka and Cassandra answer, 503 listing what does not",
    responses={
        200: {"model": Readiness},
        503: {"model": Readiness, "description": "a backing service does not answer"},
    },
)
async def readyz(backends: BackendsDep) -> JSONResponse:
    errors = await unanswered(backends)
    return JSONResponse({"ready": not errors, "errors": errors}, status_code=503 if errors else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics of the API (every API process's, added up)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthcheck",
    summary="200 when Kafka and Cassandra answer, 500 listing what does not",
    responses={200: {"model": Health}, 500: {"model": Health, "description": "a backing service does not answer"}},
)
@router.get("/healthcheck/", include_in_schema=False)
async def healthcheck(backends: BackendsDep) -> JSONResponse:
    errors = await unanswered(backends)
    if errors:
        log.warning("healthcheck failed", extra={"errors": errors})
    body = {
        "errors": errors,
        "kafka": not any(e.startswith("kafka") for e in errors),
        "cassandra": not any(e.startswith("cassandra") for e in errors),
    }
    return JSONResponse(body, status_code=500 if errors else 200)
