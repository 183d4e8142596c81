"""Operating routes: health of the backing services and the farm's status."""

import asyncio
import logging
from datetime import UTC
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.api.deps import Backends, BackendsDep
from services.api.models import Health, Status
from services.api.queries import iso
from shared.contract.events import utcnow
from shared.contract.topics import group_id, runner_group

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


@router.get(
    "/healthcheck",
    summary="200 when Kafka and Cassandra answer, 500 listing what does not",
    responses={200: {"model": Health}, 500: {"model": Health, "description": "a backing service does not answer"}},
)
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


def queue_lengths(backends: Backends, timeout: float) -> dict[str, dict[str, int]]:
    """Consumer lag per topic: messages not yet processed by the group that works that topic."""
    topics = backends.topics
    workers = {
        topics.jobs: group_id(backends.settings, "scheduler"),
        **{topic: runner_group(backends.settings, farm) for farm, topic in topics.farm_due.items()},
        topics.executions: group_id(backends.settings, "recorder"),
    }
    admin = AdminClient({"bootstrap.servers": backends.settings.kafka_bootstrap})
    metadata = admin.list_topics(timeout=timeout).topics
    queues: dict[str, dict[str, int]] = {}
    for topic, group in workers.items():
        partitions = [TopicPartition(topic, p) for p in metadata[topic].partitions] if topic in metadata else []
        latest = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in partitions},  # type: ignore[no-untyped-call]
            request_timeout=timeout,
        )
        ends = {tp.partition: f.result().offset for tp, f in latest.items()}
        committed_future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, partitions)])
        committed = {tp.partition: tp.offset for tp in committed_future[group].result().topic_partitions}
        queues[topic] = {"length": sum(max(0, end - max(committed.get(p, 0), 0)) for p, end in ends.items())}
    return queues


@router.get(
    "/status",
    summary="Farm status: hosts, running containers, scheduled jobs, counts and queues",
    response_model=Status,
)
@router.get("/status/", include_in_schema=False)
async def status(request: Request, backends: BackendsDep) -> dict[str, Any]:
    timeout = backends.settings.healthcheck_timeout_s
    queries = backends.queries
    hosts, blacklist, running, scheduled, tasks, jobs = await asyncio.gather(
        run_in_threadpool(queries.hosts),
        run_in_threadpool(queries.blacklist),
        run_in_threadpool(queries.running),
        run_in_threadpool(queries.scheduled),
        run_in_threadpool(queries.count, "tasks"),
        run_in_threadpool(queries.count, "jobs"),
    )
    try:
        queues = await asyncio.wait_for(run_in_threadpool(queue_lengths, backends, timeout), timeout + 1)
    except Exception as exc:
        log.warning("queue lengths unavailable", extra={"error": str(exc)})
        queues = {}
    base = str(request.base_url).rstrip("/")
    stale = utcnow().timestamp() - backends.settings.host_stale_after_s
    return {
        "hosts": [host_doc(h, stale, blacklist) for h in hosts]
        + [unreported_host_doc(h) for h in sorted(blacklist - {h.host for h in hosts})],
        "containers": {
            "running": [
                {
                    "taskId": r.task_id,
                    "jobId": str(r.job_id),
                    "executionId": str(r.execution_id),
                    "host": r.host,
                    "containerId": r.container_id,
                    "startedAt": iso(r.started_at),
                    "url": f"{base}/tasks/{r.task_id}/jobs/{r.job_id}/executions/{r.execution_id}",
                }
                for r in running
            ]
        },
        "jobs": {
            "count": jobs,
            "scheduled": [
                {"taskId": s.task_id, "jobId": str(s.job_id), "url": f"{base}/tasks/{s.task_id}/jobs/{s.job_id}"}
                for s in scheduled
            ],
        },
        "tasks": {"count": tasks},
        "queues": queues,
    }


def split_host(host: str) -> tuple[str, int | None]:
    name, _, port = host.rpartition(":") if ":" in host and "//" not in host else (host, "", "")
    return name, int(port) if port.isdigit() else None


def host_doc(row: Any, stale_before: float, blacklist: set[str]) -> dict[str, Any]:
    name, port = split_host(row.host)
    seen = row.last_seen.replace(tzinfo=UTC).timestamp() if row.last_seen else 0.0
    blacklisted = row.host in blacklist
    available = seen >= stale_before and bool(row.engine_ok) and row.circuit != "open" and not blacklisted
    error = row.error
    if seen < stale_before:
        error = f"no heartbeat since {iso(row.last_seen)}"
    return {
        "host": name,
        "port": port,
        "farm": row.farm,
        "available": available,
        "blacklisted": blacklisted,
        "circuit": row.circuit,
        "error": error,
        "running": row.running,
        "capacity": row.capacity,
        "lastSeenAt": iso(row.last_seen),
        "version": row.runner_version,
    }


def unreported_host_doc(host: str) -> dict[str, Any]:
    """A blacklisted host no runner has reported (yet)."""
    name, port = split_host(host)
    return {
        "host": name,
        "port": port,
        "farm": None,
        "available": False,
        "blacklisted": True,
        "circuit": None,
        "error": "no runner has reported this host",
        "running": None,
        "capacity": None,
        "lastSeenAt": None,
        "version": None,
    }
