"""The farm's status: hosts (heartbeats, circuit, blacklist), running containers, scheduled jobs, counts, and
the length of each worker group's queue."""

import asyncio
import logging
from datetime import UTC
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from services.api.deps import BackendsDep, UrlsDep
from services.api.models import Status
from services.api.probes import queue_lengths
from services.api.queries import iso
from shared.contract.events import utcnow

log = logging.getLogger(__name__)
router = APIRouter()


@router.get(
    "/status",
    summary="Farm status: hosts, running containers, scheduled jobs, counts and queues",
    response_model=Status,
)
@router.get("/status/", include_in_schema=False)
async def status(backends: BackendsDep, urls: UrlsDep) -> dict[str, Any]:
    settings, queries = backends.settings, backends.queries
    timeout = settings.healthcheck_timeout_s
    hosts, blacklist, running, scheduled, tasks, jobs = await asyncio.gather(
        run_in_threadpool(queries.hosts),
        run_in_threadpool(queries.blacklist),
        run_in_threadpool(queries.running),
        run_in_threadpool(queries.scheduled),
        run_in_threadpool(queries.count, "tasks"),
        run_in_threadpool(queries.count, "jobs"),
    )
    try:
        queues = await asyncio.wait_for(
            run_in_threadpool(queue_lengths, settings, backends.topics, timeout), timeout + 1
        )
    except Exception as exc:
        log.warning("queue lengths unavailable", extra={"error": str(exc)})
        queues = {}
    stale = utcnow().timestamp() - settings.host_stale_after_s
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
                    "url": urls.execution(r.task_id, r.job_id, r.execution_id),
                }
                for r in running
            ]
        },
        "jobs": {
            "count": jobs,
            "scheduled": [
                {"taskId": s.task_id, "jobId": str(s.job_id), "url": urls.job(s.task_id, s.job_id)} for s in scheduled
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
