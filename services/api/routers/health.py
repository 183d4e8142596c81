"""The healthcheck: 200 when Kafka and Cassandra answer, 500 listing what does not (open without auth)."""

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.api.deps import BackendsDep
from services.api.models import Health
from services.api.probes import cassandra_answers, kafka_answers

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


@router.get(
    "/healthcheck",
    summary="200 when Kafka and Cassandra answer, 500 listing what does not",
    responses={200: {"model": Health}, 500: {"model": Health, "description": "a backing service does not answer"}},
)
@router.get("/healthcheck/", include_in_schema=False)
async def healthcheck(backends: BackendsDep) -> JSONResponse:
    settings, session = backends.settings, backends.session
    timeout = settings.healthcheck_timeout_s
    kafka, cassandra = await asyncio.gather(
        check("kafka", lambda: kafka_answers(settings.kafka_bootstrap, timeout), timeout),
        check("cassandra", lambda: cassandra_answers(session, timeout), timeout),
    )
    errors = [e for e in (kafka, cassandra) if e]
    if errors:
        log.warning("healthcheck failed", extra={"errors": errors})
    body = {"errors": errors, "kafka": kafka is None, "cassandra": cassandra is None}
    return JSONResponse(body, status_code=500 if errors else 200)
