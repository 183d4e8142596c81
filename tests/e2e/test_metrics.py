"""Metrics and probes of the five real services (docs/metrics.md): each is scraped before and after jobs run
through the stack, and the numbers that those jobs must move have moved."""

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.devstack import DevStack
from tests.e2e.lifecycle import post_job, wait_executions, wait_status
from tests.helpers import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def urls(stack: DevStack) -> dict[str, str]:
    return {"api": stack.url} | {name: f"http://127.0.0.1:{port}" for name, port in stack.metrics_ports.items()}


@pytest.fixture
def receiver() -> Iterator[str]:
    """Webhook receiver: /ok/... answers 200, /broken/... 500."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(500 if self.path.startswith("/broken") else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_service_answers_liveness_readiness_and_metrics(stack: DevStack) -> None:
    assert set(urls(stack)) == {"api", "recorder", "scheduler", "runner", "notifier"}
    for name, url in urls(stack).items():
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"alive": True}, name
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"ready": True, "errors": []}), name
        assert b"# TYPE fastlane_" in httpx.get(f"{url}/metrics", timeout=10).content, name


def test_jobs_run_through_the_stack_move_each_service_s_numbers(
    stack: DevStack, client: httpx.Client, receiver: str
) -> None:
    where = urls(stack)
    before = {name: scrape(url) for name, url in where.items()}
    hooks = {"finishes": [{"url": f"{receiver}/ok/finishes"}, {"url": f"{receiver}/broken/finishes", "retries": 1}]}
    now = post_job(client, "echo metrics", webhooks=hooks)
    later = post_job(client, "true", startIn="1s")
    wait_status(client, now["executionUrl"], {"done"})
    assert [e["status"] for e in wait_executions(client, later["jobUrl"], 1)] == ["done"]

    def moved(name: str, metric: str, by: float = 1, **labels: str) -> Callable[[], bool]:
        def probe() -> bool:
            return value(scrape(where[name]), metric, **labels) >= value(before[name], metric, **labels) + by

        return probe

    checks = [
        ("api", "fastlane_jobs_accepted_total", 2, {"order": "created"}),
        ("scheduler", "fastlane_scheduler_executions_due_total", 2, {}),
        ("scheduler", "fastlane_scheduler_timer_lag_seconds_count", 1, {}),
        ("runner", "fastlane_engine_call_seconds_count", 2, {"call": "start"}),
        ("runner", "fastlane_engine_call_seconds_count", 2, {"call": "remove"}),
        ("runner", "fastlane_execution_duration_seconds_count", 2, {}),
        ("runner", "fastlane_execution_queue_wait_seconds_count", 2, {}),
        ("recorder", "fastlane_executions_finished_total", 2, {"status": "done"}),
        ("notifier", "fastlane_deliveries_total", 1, {"channel": "webhook", "outcome": "delivered"}),
        ("notifier", "fastlane_deliveries_total", 1, {"channel": "webhook", "outcome": "retrying"}),
    ]
    for name, metric, by, labels in checks:
        eventually(moved(name, metric, by, **labels), 30, 0.5, f"{name} {metric} {labels} +{by}")
    runner = scrape(where["runner"])
    assert value(runner, "fastlane_runner_slots") == 4  # the stack's FASTLANE_MAX_RUNNING
    assert 0 <= value(runner, "fastlane_runner_slots_used") <= 4

    # Each consumer reports its own partitions' lag (librdkafka's statistics, every 5 s).
    def lag_reported() -> Samples | None:
        samples = scrape(where["recorder"])
        return samples if any(n == "fastlane_consumer_lag_messages" for n, _ in samples) else None

    recorder = eventually(lag_reported, 30, 1, "the recorder's consumer lag")
    groups = {dict(ls)["group"] for n, ls in recorder if n == "fastlane_consumer_lag_messages"}
    assert any(g.endswith("recorder") for g in groups), groups
