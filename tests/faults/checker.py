"""An independent checker for the fault rounds. It does not take fastlane's word for what ran:

- container starts come from the Docker engine's own event stream (`fastlane-<executionId>` containers);
- execution ends come from the public Kafka topic (`<prefix>executions`, read like any subscriber would, with
  the ExecutionDue messages of `<prefix>executions.due` for the execution ids the scheduler made);
- what the API shows is polled all along, so a final status that later moves is seen;
- webhooks are received by a local HTTP receiver.

Verdict per accepted job (POST answered 200):
- lost: no execution; its latest execution not final (or its retry chain stopped short) within the bound; a
  webhook the job asked for never delivered for one of its ended executions;
- duplicated: more than one container start for one execution id; more executions for one job than its
  retries allow; a POST answered 503 (or not at all) whose job exists anyway (a client retrying it runs it twice);
- wrong: more than one final status for one execution (Kafka events, API, webhooks); an API status that moves
  after it was final; an execution whose container started but whose log lacks the job's marker (every command
  prints its marker first thing), i.e. logs missing for an execution that ran. One exception, counted apart
  (`taken`): an execution a peer ended `failed` because its host was declared lost (`host <h> lost`). Its
  host's runner gave no sign of life past the limit, so what its container printed is unknown to fastlane by
  design (the host may be gone for good); the runner, if it comes back, stops the container and must not
  report it (a status moving from `failed` to `done` would be wrong, and is checked above).
"""

import contextlib
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import docker
import httpx
from confluent_kafka import Consumer
from pydantic import ValidationError

from shared.contract.events import Event, ExecutionDue, ExecutionFinished, ExecutionPulling, ExecutionStarted, decode

FINAL = frozenset({"done", "failed", "timedout", "expired", "stopped"})
RETRIED = frozenset({"failed", "timedout"})
CONTAINER_PREFIX = "fastlane-"


class EngineWatch:
    """Container starts per execution id, from the event streams of one or more engines (a thread each);
    reconnects (with `since`) after an engine went away, and drops the events it had seen already."""

    def __init__(self, *base_urls: str) -> None:
        self.base_urls = base_urls
        self.lock = threading.Lock()
        self.starts: dict[str, set[tuple[str, int]]] = defaultdict(set)  # execution id -> {(container, timeNano)}
        self.job_of: dict[str, str] = {}
        self.since = dict.fromkeys(base_urls, int(time.time()) - 5)
        self.reconnects = 0
        self._stop = threading.Event()
        self._streams: dict[str, Any] = {}
        self._threads = [
            threading.Thread(target=self._run, args=(url,), name="engine-watch", daemon=True) for url in base_urls
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for stream in list(self._streams.values()):
            with contextlib.suppress(Exception):
                stream.close()

    def _run(self, base_url: str) -> None:
        while not self._stop.is_set():
            try:
                client = docker.DockerClient(base_url=base_url, timeout=30)
                try:
                    self._streams[base_url] = client.events(
                        since=self.since[base_url], decode=True, filters={"type": "container", "event": "start"}
                    )
                    for event in self._streams[base_url]:
                        self.since[base_url] = max(self.since[base_url], int(event.get("time", 0)))
                        self.record(event)
                finally:
                    client.close()
            except Exception:
                pass  # engine down, paused (read timeout) or restarted: connect again from `since`
            self.reconnects += 1
            self._stop.wait(0.5)

    def record(self, event: dict[str, Any]) -> None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        name = str(attributes.get("name", ""))
        if not name.startswith(CONTAINER_PREFIX):
            return
        execution_id = name[len(CONTAINER_PREFIX) :]
        with self.lock:
            self.starts[execution_id].add((str(event.get("id", "")), int(event.get("timeNano", 0))))
            if "fastlane.job-id" in attributes:
                self.job_of[execution_id] = str(attributes["fastlane.job-id"])

    def start_count(self, execution_id: str) -> int:
        with self.lock:
            return len(self.starts.get(execution_id, ()))

    def executions_of(self, job_id: str) -> set[str]:
        with self.lock:
            return {e for e, j in self.job_of.items() if j == job_id}


class EventWatch:
    """Every ExecutionFinished (and the execution ids of ExecutionDue/Started/Pulling) of one stack, from the
    start of its topics, with a consumer group of its own."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.lock = threading.Lock()
        self.finals: dict[str, list[tuple[str, str]]] = defaultdict(list)  # execution id -> [(status, error)]
        self.executions: dict[str, set[str]] = defaultdict(set)  # job id -> execution ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"faults-checker-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 2,  # not the connection failures of every outage a round causes on purpose
            }
        )
        consumer.subscribe(self.topics)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                try:
                    self.record(decode(msg.value() or b""))
                except ValidationError:
                    continue
        finally:
            consumer.close()

    def record(self, event: Event) -> None:
        if isinstance(event, ExecutionDue | ExecutionStarted | ExecutionPulling | ExecutionFinished):
            with self.lock:
                self.executions[str(event.job_id)].add(str(event.execution_id))
                if isinstance(event, ExecutionFinished):
                    self.finals[str(event.execution_id)].append((event.status, event.error or ""))

    def final_statuses(self, execution_id: str) -> set[str]:
        with self.lock:
            return {s for s, _ in self.finals.get(execution_id, [])}

    def errors(self, execution_id: str) -> list[str]:
        with self.lock:
            return [e for _, e in self.finals.get(execution_id, []) if e]

    def executions_of(self, job_id: str) -> set[str]:
        with self.lock:
            return set(self.executions.get(job_id, ()))


class WebhookReceiver:
    """A local HTTP receiver: every delivery by execution id (delivery id, event, status)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(body)
                    with receiver.lock:
                        receiver.deliveries[str(doc["execution"]["id"])].append(
                            (str(doc["delivery"]["id"]), str(doc["event"]), str(doc["execution"]["status"]))
                        )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def statuses(self, execution_id: str) -> set[str]:
        with self.lock:
            return {s for _, _, s in self.deliveries.get(execution_id, [])}


@dataclass
class JobSpec:
    """One job a round submits: its body and what the checker expects of it."""

    kind: str
    task: str
    marker: str
    body: dict[str, Any]

    @property
    def retries(self) -> int:
        return int(self.body.get("retries", 0))

    @property
    def webhook(self) -> bool:
        return "webhooks" in self.body


@dataclass
class Accepted:
    spec: JobSpec
    job_id: str
    job_url: str


@dataclass
class Seen:
    """What the API showed of one job over the round."""

    executions: list[dict[str, Any]] = field(default_factory=list)  # latest answer, newest first
    sequences: dict[str, list[str]] = field(default_factory=dict)  # execution id -> statuses, as they changed
    ever: set[str] = field(default_factory=set)  # every execution id ever listed


class ApiWatch:
    """Polls GET jobUrl of every accepted job all through the round."""

    def __init__(self, interval: float = 1.0, client: httpx.Client | None = None) -> None:
        self.interval = interval
        self.lock = threading.Lock()
        self.jobs: list[Accepted] = []
        self.seen: dict[str, Seen] = {}
        self.client = client or httpx.Client(timeout=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-watch", daemon=True)

    def add(self, job: Accepted) -> None:
        with self.lock:
            self.jobs.append(job)
            self.seen[job.job_id] = Seen()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                jobs = list(self.jobs)
            for job in jobs:
                if self._stop.is_set():
                    return
                self.poll(job)
            self._stop.wait(self.interval)

    def poll(self, job: Accepted) -> None:
        try:
            response = self.client.get(job.job_url)
            if response.status_code != 200:
                return
            executions: list[dict[str, Any]] = response.json()["job"]["executions"]
        except (httpx.HTTPError, ValueError, KeyError):
            return
        with self.lock:
            seen = self.seen[job.job_id]
            seen.executions = executions
            for e in executions:
                eid, status = str(e["executionId"]), str(e["status"])
                seen.ever.add(eid)
                sequence = seen.sequences.setdefault(eid, [])
                if not sequence or sequence[-1] != status:
                    sequence.append(status)

    def snapshot(self, job_id: str) -> Seen:
        with self.lock:
            s = self.seen[job_id]
            return Seen(list(s.executions), {k: list(v) for k, v in s.sequences.items()}, set(s.ever))


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    # What the checker saw of the round's jobs (a blind checker would pass everything): executions with a
    # container start, executions with an ExecutionFinished, executions with a webhook delivery.
    seen: tuple[int, int, int] = (0, 0, 0)
    # Executions ended `failed` by a peer because their host was declared lost (no log by design; see above).
    taken: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong)

    def lines(self) -> Iterator[str]:
        for what, items in (("LOST", self.lost), ("DUPLICATED", self.duplicated), ("WRONG", self.wrong)):
            for item in items:
                yield f"{what}: {item}"


class Checker:
    """One round's jobs, judged from the watches (shared by all rounds of a stack)."""

    def __init__(
        self,
        api_url: str,
        engine: EngineWatch,
        events: EventWatch,
        hooks: WebhookReceiver,
        api: ApiWatch,
        client: httpx.Client | None = None,
    ) -> None:
        self.api_url = api_url
        self.engine = engine
        self.events = events
        self.hooks = hooks
        self.api = api
        self.accepted: list[Accepted] = []
        self.refused: list[tuple[JobSpec, str]] = []  # not answered 200: (job, what it got)
        self.client = client or httpx.Client(timeout=15)

    def submit(self, spec: JobSpec) -> bool:
        """POST one job; True when accepted (200)."""
        try:
            response = self.client.post(f"{self.api_url}/tasks/{spec.task}", json=spec.body)
        except httpx.HTTPError as exc:
            self.refused.append((spec, f"{type(exc).__name__}"))
            return False
        if response.status_code != 200:
            self.refused.append((spec, f"HTTP {response.status_code}"))
            return False
        job_id = str(response.json()["jobId"])
        job = Accepted(spec, job_id, f"{self.api_url}/tasks/{spec.task}/jobs/{job_id}")
        self.accepted.append(job)
        self.api.add(job)
        return True

    def unsettled(self, job: Accepted) -> str | None:
        """Why the job has not reached its end yet (None: it has)."""
        seen = self.api.snapshot(job.job_id)
        if not seen.executions:
            return "no execution"
        latest = seen.executions[0]
        status = str(latest["status"])
        if status not in FINAL:
            return f"latest execution {latest['executionId']} is {status}"
        if status in RETRIED and len(seen.executions) < job.spec.retries + 1:
            return f"retry chain stopped at {len(seen.executions)}/{job.spec.retries + 1} executions (last {status})"
        if job.spec.webhook:
            for e in seen.executions:
                if str(e["status"]) in FINAL and not self.hooks.statuses(str(e["executionId"])):
                    return f"no webhook delivered for execution {e['executionId']} ({e['status']})"
        return None

    def wait_settled(self, bound: float) -> float | None:
        """Seconds until every accepted job reached its end, or None when some had not within `bound`."""
        start = time.monotonic()
        while time.monotonic() - start < bound:
            if all(self.unsettled(j) is None for j in self.accepted):
                return time.monotonic() - start
            time.sleep(0.5)
        return None

    def verdict(self) -> Verdict:
        v = Verdict()
        started = finished = hooked = 0
        for job in self.accepted:
            self.api.poll(job)
            self._judge(job, v)
            every = self.api.snapshot(job.job_id).ever | self.events.executions_of(job.job_id)
            started += sum(1 for e in every if self.engine.start_count(e))
            finished += sum(1 for e in every if self.events.final_statuses(e))
            hooked += sum(1 for e in every if self.hooks.statuses(e))
        v.seen = (started, finished, hooked)
        for spec, got in self.refused:
            try:
                response = self.client.get(f"{self.api_url}/tasks/{spec.task}")
            except httpx.HTTPError:
                continue
            if response.status_code == 200 and response.json().get("jobs"):
                v.duplicated.append(
                    f"task {spec.task}: the POST got {got} (not accepted) but its job exists: "
                    f"{[j['id'] for j in response.json()['jobs']]} — a client retrying it runs it twice"
                )
        return v

    def _judge(self, job: Accepted, v: Verdict) -> None:
        spec = job.spec
        name = f"job {job.job_id} ({spec.kind}, task {spec.task})"
        reason = self.unsettled(job)
        if reason is not None:
            v.lost.append(f"{name}: {reason}")
        seen = self.api.snapshot(job.job_id)
        every = seen.ever | self.events.executions_of(job.job_id) | self.engine.executions_of(job.job_id)
        if len(every) > spec.retries + 1:
            v.duplicated.append(f"{name}: {len(every)} executions, retries {spec.retries} allow {spec.retries + 1}")
        api_final = {str(e["executionId"]): str(e["status"]) for e in seen.executions}
        for eid in sorted(every):
            starts = self.engine.start_count(eid)
            if starts > 1:
                v.duplicated.append(f"{name}: execution {eid} container started {starts} times")
            finals = self.events.final_statuses(eid) | self.hooks.statuses(eid)
            if api_final.get(eid) in FINAL:
                finals.add(api_final[eid])
            if len(finals) > 1:
                v.wrong.append(
                    f"{name}: execution {eid} has final statuses {sorted(finals)} "
                    f"(kafka {self.events.final_statuses(eid) or '-'}, api {api_final.get(eid, '-')}, "
                    f"webhooks {self.hooks.statuses(eid) or '-'}); errors {self.events.errors(eid)}"
                )
            sequence = seen.sequences.get(eid, [])
            finished = [i for i, s in enumerate(sequence) if s in FINAL]
            if finished and finished[0] < len(sequence) - 1:
                v.wrong.append(f"{name}: execution {eid} moved after its end: {' -> '.join(sequence)}")
            if starts and not self._log_has_marker(job, eid):
                if self._taken_from_lost_host(job, eid, api_final.get(eid)):
                    v.taken.append(f"{name}: execution {eid}")
                    continue
                v.wrong.append(
                    f"{name}: execution {eid} ran (container started) but its log lacks the marker: "
                    f"status {api_final.get(eid, '?')}, {self._execution_summary(job, eid)}"
                )

    def _execution(self, job: Accepted, execution_id: str) -> dict[str, Any] | None:
        try:
            response = self.client.get(f"{job.job_url}/executions/{execution_id}")
            if response.status_code != 200:
                return None
            found: dict[str, Any] = response.json()["execution"]
            return found
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def _taken_from_lost_host(self, job: Accepted, execution_id: str, status: str | None) -> bool:
        """Ended `failed` by a peer for its lost host, on every account (Kafka and the API)."""
        execution = self._execution(job, execution_id)
        error = str((execution or {}).get("error") or "")
        events = self.events.errors(execution_id)
        lost = " lost: its runner gave no sign of life"
        return status == "failed" and lost in error and bool(events) and all(lost in (e or "") for e in events)

    def _log_has_marker(self, job: Accepted, execution_id: str) -> bool:
        execution = self._execution(job, execution_id)
        return execution is not None and job.spec.marker in str(execution.get("log") or "")

    def _execution_summary(self, job: Accepted, execution_id: str) -> str:
        execution = self._execution(job, execution_id)
        if execution is None:
            return "not readable from the API"
        meta = execution.get("metadata") or {}
        return (
            f"exitCode {execution.get('exitCode')}, host {meta.get('dockerHost')}, "
            f"log {str(execution.get('log') or '')[:80]!r}, error {str(execution.get('error') or '')[:200]!r}"
        )
