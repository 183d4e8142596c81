"""Prometheus metrics of every service (prometheus-client), and the small HTTP server through which the services
other than the API expose them with their probes: `GET /metrics`, `GET /healthz` (the process answers) and
`GET /readyz` (Kafka and Cassandra answer), on `FASTLANE_METRICS_HOST`:`FASTLANE_METRICS_PORT` (docs/metrics.md).

Every metric is declared here, so the names, their help and their labels are in one place and a dashboard can be
written from this file. Labels take values from small fixed sets only (statuses, outcomes, engine calls,
backends; a consumer's own partitions): never task ids or anything a client chooses.

The API serves `/metrics` on its own port. With several API processes (`FASTLANE_API_PROCESSES`), each writes
its samples to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set up by
services/api/__main__.py before the workers start) and a scrape adds them up, so whichever process answers,
the counts are the API's as a whole.
"""

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from shared.infra.probes import unanswered

if TYPE_CHECKING:
    from cassandra.cluster import Session

    from shared.process.settings import Settings

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0

# Seconds: from a few milliseconds (engine calls, timers) to the hard limit of a run (30 min by default).
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# --- API ---
JOBS_ACCEPTED = Counter(
    "fastlane_jobs_accepted", "Job orders the API answered 200 to (`created`: POST, `updated`: PUT)", ["order"]
)
ORDERS_REFUSED = Counter(
    "fastlane_orders_unconfirmed",
    "Orders answered 503 (not enqueued) or 504 (Kafka did not say in time) by the API",
    ["answer"],
)
# --- scheduler ---
TIMER_LAG = Histogram(
    "fastlane_scheduler_timer_lag_seconds", "How late a timer fired: now minus the time it was due", buckets=SECONDS
)
TIMERS = Gauge(
    "fastlane_scheduler_timers",
    "Timer entries the scheduler holds for its partitions (cron, startAt, retries; a superseded one until it comes up)",
)
EXECUTIONS_DUE = Counter("fastlane_scheduler_executions_due", "ExecutionDue messages the scheduler committed")
# --- runner ---
RUNNER_SLOTS = Gauge("fastlane_runner_slots", "Containers this runner may run at once (its farm's maxRunning)")
RUNNER_SLOTS_USED = Gauge("fastlane_runner_slots_used", "Containers this runner is starting or running now")
ENGINE_CALL = Histogram(
    "fastlane_engine_call_seconds", "Docker engine calls, by call, errors included", ["call"], buckets=SECONDS
)
EXECUTION_DURATION = Histogram(
    "fastlane_execution_duration_seconds", "How long containers ran, from start to end", buckets=SECONDS
)
QUEUE_WAIT = Histogram(
    "fastlane_execution_queue_wait_seconds",
    "From an execution's creation (when it was due) to its container's start",
    buckets=SECONDS,
)
# --- recorder ---
EXECUTIONS_FINISHED = Counter(
    "fastlane_executions_finished",
    "Executions that reached a final status, as the recorder projected them (a redelivered end counts again)",
    ["status"],
)
# --- notifier ---
DELIVERIES = Counter(
    "fastlane_deliveries",
    "Notification attempts by channel (webhook, mail) and outcome (delivered, retrying, failed)",
    ["channel", "outcome"],
)
# --- every consumer and every retry ---
CONSUMER_LAG = Gauge(
    "fastlane_consumer_lag_messages",
    "Messages of a partition this process's consumer has yet to read (librdkafka's statistics, every 5 s)",
    ["group", "topic", "partition"],
)
BACKEND_ERRORS = Counter(
    "fastlane_backend_errors",
    "Failures of a backing service met and retried (kafka, cassandra, docker, http)",
    ["backend"],
)

STATISTICS_INTERVAL_MS = 5000
_LAG_BY_GROUP: dict[str, "LagStatistics"] = {}
_LAG_LOCK = threading.Lock()


def observe_between(histogram: Any, later: Any, earlier: Any) -> None:
    """Observe `later - earlier` in seconds (at least 0). Never raises: times can come from messages sent past
    the API (a naive datetime, say), and a metric must never be what fails a message's handling."""
    try:
        histogram.observe(max(0.0, (later - earlier).total_seconds()))
    except Exception:
        log.warning("a time could not be measured", extra={"metric": getattr(histogram, "_name", "?")})


def backend_of(exc: BaseException) -> str:
    """Which backing service `exc` came from, by the module of its type (for BACKEND_ERRORS)."""
    if isinstance(exc, KafkaException):  # its module is librdkafka's binding, `cimpl`
        return "kafka"
    module = type(exc).__module__
    for prefix, name in (("confluent_kafka", "kafka"), ("cassandra", "cassandra"), ("docker", "docker")):
        if module.startswith(prefix):
            return name
    if getattr(exc, "transient", False):  # the runner's EngineUnavailable
        return "docker"
    if module.startswith(("httpx", "requests", "urllib3")):
        return "http"
    return "other"


class LagStatistics:
    """A librdkafka `stats_cb` keeping CONSUMER_LAG for one consumer group: the partitions assigned now, each
    with its lag; partitions no longer assigned are dropped from the metric."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._shown: set[tuple[str, str]] = set()

    def config(self) -> dict[str, Any]:
        return {"statistics.interval.ms": STATISTICS_INTERVAL_MS, "stats_cb": self}

    @classmethod
    def of(cls, group: str) -> "LagStatistics":
        """The group's one instance in this process: a consumer closed and opened again (a runner leaving and
        rejoining its farm) takes over the partitions its predecessor showed, and drops those it lost."""
        with _LAG_LOCK:
            return _LAG_BY_GROUP.setdefault(group, cls(group))

    def forget(self) -> None:
        """Drop every partition shown (the consumer was closed: it reads none now)."""
        for topic, partition in self._shown:
            CONSUMER_LAG.remove(self.group, topic, partition)
        self._shown = set()

    def __call__(self, raw: str) -> None:
        try:
            stats = json.loads(raw)
            now: set[tuple[str, str]] = set()
            for topic, details in (stats.get("topics") or {}).items():
                for partition, p in (details.get("partitions") or {}).items():
                    lag = p.get("consumer_lag", -1)
                    if partition == "-1" or lag is None or lag < 0:
                        continue  # not assigned to this consumer, or not known yet
                    CONSUMER_LAG.labels(self.group, topic, partition).set(lag)
                    now.add((topic, partition))
            for topic, partition in self._shown - now:
                CONSUMER_LAG.remove(self.group, topic, partition)
            self._shown = now
        except Exception:  # statistics must never break a consumer
            log.exception("could not read the consumer's statistics")


class timed:
    """Observe the seconds a block took into a histogram child, whether it raised or not."""

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self._histogram.observe(time.perf_counter() - self._start)


def exposition() -> bytes:
    """This process's metrics in Prometheus' text format; in multiprocess mode, every process's added up."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


Check = Callable[[], list[str]]


class _Handler(BaseHTTPRequestHandler):
    ready: Check = staticmethod(lambda: [])

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(HTTPStatus.OK, exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._answer(HTTPStatus.OK, b'{"alive": true}\n', "application/json")
        elif path == "/readyz":
            errors = type(self).ready()
            body = json.dumps({"ready": not errors, "errors": errors}).encode() + b"\n"
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE if errors else HTTPStatus.OK, body, "application/json")
        else:
            self._answer(
                HTTPStatus.NOT_FOUND, b'{"error": "not found: /metrics, /healthz, /readyz"}\n', "application/json"
            )

    def _answer(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes and probes every few seconds would drown the service's own log


def _cached(check: Check, ttl_s: float) -> Check:
    """`check`, asked at most once per `ttl_s` (probes arriving meanwhile get its last answer): a flood of
    /readyz requests costs the backends one question a second."""
    lock = threading.Lock()
    last: list[tuple[float, list[str]]] = []

    def cached() -> list[str]:
        with lock:
            if not last or time.monotonic() - last[0][0] >= ttl_s:
                last[:] = [(time.monotonic(), check())]
            return list(last[0][1])

    return cached


class ProbeServer:
    """`/metrics`, `/healthz`, `/readyz` of a service on a thread of its own; `ready` returns what does not
    answer (an empty list when ready). Port 0 means no server (the setting's default outside `make run`)."""

    def __init__(self, host: str, port: int, ready: Check, ready_ttl_s: float = 1.0) -> None:
        handler = type("Handler", (_Handler,), {"ready": staticmethod(_cached(ready, ready_ttl_s))})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="probes", daemon=True)

    def start(self) -> "ProbeServer":
        self._thread.start()
        log.info("metrics and probes served", extra={"port": self.port})
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_probes(settings: "Settings", session: "Session | None") -> ProbeServer | None:
    """The probe server of a service, per its settings (None when `metrics_port` is 0); ready while Kafka and
    Cassandra (when the service has a `session`) answer within 2 s."""
    if settings.metrics_port == 0:
        return None
    return ProbeServer(
        settings.metrics_host,
        settings.metrics_port,
        lambda: unanswered(settings.kafka_bootstrap, session, READY_TIMEOUT_S),
    ).start()
