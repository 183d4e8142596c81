"""The metrics plumbing (shared/process/metrics.py): consumer lag from librdkafka's statistics, which backend an
error came from, the probe server's routes. tests/e2e/test_metrics.py scrapes every real service."""

import json
from collections.abc import Iterator

import httpx
import pytest
from cassandra import OperationTimedOut
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import REGISTRY

from services.runner.ports import EngineUnavailable
from shared.process.metrics import CONSUMER_LAG, LagStatistics, ProbeServer, backend_of


def lag(group: str, topic: str, partition: str) -> float | None:
    return REGISTRY.get_sample_value(
        "fastlane_consumer_lag_messages", {"group": group, "topic": topic, "partition": partition}
    )


def stats(partitions: dict[str, int]) -> str:
    return json.dumps(
        {"topics": {"jobs": {"partitions": {p: {"consumer_lag": n} for p, n in partitions.items()} | {"-1": {}}}}}
    )


def test_lag_follows_the_partitions_assigned_now() -> None:
    statistics = LagStatistics("g-lag")
    statistics(stats({"0": 5, "1": 0, "2": -1}))  # -1: assigned, not known yet
    assert (lag("g-lag", "jobs", "0"), lag("g-lag", "jobs", "1"), lag("g-lag", "jobs", "2")) == (5, 0, None)
    statistics(stats({"1": 7}))  # partition 0 went to another consumer
    assert (lag("g-lag", "jobs", "0"), lag("g-lag", "jobs", "1")) == (None, 7)
    assert lag("g-lag", "jobs", "-1") is None


def test_odd_statistics_never_break_the_consumer() -> None:
    statistics = LagStatistics("g-odd")
    for raw in ("", "not json", "[]", '{"topics": null}', '{"topics": {"t": {"partitions": {"0": {}}}}}'):
        statistics(raw)
    assert CONSUMER_LAG.collect()  # still there; nothing raised
    assert lag("g-odd", "t", "0") is None
    assert "consumer_lag" not in statistics.config() and statistics.config()["stats_cb"] is statistics


def test_errors_are_told_by_the_backend_they_came_from() -> None:
    assert backend_of(KafkaException(KafkaError(KafkaError._TRANSPORT))) == "kafka"
    assert backend_of(OperationTimedOut()) == "cassandra"
    assert backend_of(EngineUnavailable("no answer")) == "docker"
    assert backend_of(httpx.ConnectError("refused")) == "http"
    assert backend_of(ValueError("x")) == "other"


@pytest.fixture
def server() -> Iterator[ProbeServer]:
    probes = ProbeServer("127.0.0.1", 0, lambda: ["kafka: no answer within 2s"]).start()
    yield probes
    probes.close()


def test_the_probe_server_answers_metrics_liveness_and_readiness(server: ProbeServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert (
        b"# HELP fastlane_runner_slots_used " in metrics.content
        and b"# TYPE fastlane_jobs_accepted_total counter" in metrics.content
    )
    assert httpx.get(f"{base}/healthz").json() == {"alive": True}
    not_ready = httpx.get(f"{base}/readyz")
    assert not_ready.status_code == 503 and not_ready.json() == {
        "ready": False,
        "errors": ["kafka: no answer within 2s"],
    }
    assert httpx.get(f"{base}/nothing").status_code == 404
    assert httpx.get(f"{base}/metrics?x=1").status_code == 200


def test_a_port_taken_fails_at_start_not_later(server: ProbeServer) -> None:
    with pytest.raises(OSError):
        ProbeServer("127.0.0.1", server.port, lambda: [])


def test_a_group_s_lag_survives_its_consumer_being_reopened_and_is_dropped_when_it_leaves() -> None:
    first = LagStatistics.of("g-reopen")
    first(stats({"0": 3}))
    again = LagStatistics.of("g-reopen")  # the consumer closed and opened again: same instance
    assert again is first
    again(stats({"1": 4}))  # partition 0 went elsewhere meanwhile: dropped, not left stale
    assert (lag("g-reopen", "jobs", "0"), lag("g-reopen", "jobs", "1")) == (None, 4)
    again.forget()  # the runner left its farm's group
    assert lag("g-reopen", "jobs", "1") is None


def test_readiness_asks_the_backends_at_most_once_a_second() -> None:
    asked: list[int] = []

    def check() -> list[str]:
        asked.append(1)
        return []

    probes = ProbeServer("127.0.0.1", 0, check).start()
    try:
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{probes.port}/readyz").status_code == 200
    finally:
        probes.close()
    assert 1 <= len(asked) <= 3  # 20 probes within a second or two


def test_a_time_that_cannot_be_measured_is_skipped_never_raised() -> None:
    from datetime import UTC, datetime

    from shared.process.metrics import QUEUE_WAIT, observe_between

    count = REGISTRY.get_sample_value("fastlane_execution_queue_wait_seconds_count") or 0
    observe_between(QUEUE_WAIT, datetime.now(UTC), datetime.now())  # aware minus naive: TypeError inside
    assert (REGISTRY.get_sample_value("fastlane_execution_queue_wait_seconds_count") or 0) == count
    observe_between(QUEUE_WAIT, datetime.now(UTC), datetime.now(UTC))
    assert REGISTRY.get_sample_value("fastlane_execution_queue_wait_seconds_count") == count + 1
