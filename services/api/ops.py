"""Operating routes: health of the backing services and the farm's status."""

import asyncio
import logging
from typing import Any

from confluent_kafka.admin import AdminClient
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.api.deps import Backends, BackendsDep

log = logging.getLogger(__name__)
router = APIRouter()


def kafka_answers(backends: Backends, timeout: float) -> None:
    AdminClient({"bootstrap.servers": backends.settings.kafka_bootstrap}).list_topics(timeout=timeout)


def cassandra_answers(backends: Backends, timeout: float) -> None:
    backends.session.execute("SELECT release_version FROM system.local", timeout=timeout)


async def check(name: str, probe: Any, backends: Backends, timeout: float) -> str | None:
    """None when the service answered within `timeout`, else what went wrong."""
    try:
        await asyncio.wait_for(run_in_threadpool(probe, backends, timeout), timeout + 0.5)
        return None
    except TimeoutError:
        return f"{name}: no answer within {timeout:g}s"
    except Exception as exc:
        return f"{name}: {exc}"


@router.get("/healthcheck", summary="200 when Kafka and Cassandra answer, 500 listing what does not")
@router.get("/healthcheck/", include_in_schema=False)
async def healthcheck(backends: BackendsDep) -> JSONResponse:
    timeout = backends.settings.healthcheck_timeout_s
    kafka, cassandra = await asyncio.gather(
        check("kafka", kafka_answers, backends, timeout), check("cassandra", cassandra_answers, backends, timeout)
    )
    errors = [e for e in (kafka, cassandra) if e]
    if errors:
        log.warning("healthcheck failed", extra={"errors": errors})
    body = {"errors": errors, "kafka": kafka is None, "cassandra": cassandra is None}
    return JSONResponse(body, status_code=500 if errors else 200)
