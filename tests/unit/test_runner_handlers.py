import json
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import urllib3

from services.runner.docker_runtime import DockerRuntime, demultiplex
from services.runner.handlers import Limits, clip, container_spec, run_execution
from services.runner.ports import EngineUnavailable, LogTail
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStarted,
    JobMessage,
    new_execution_id,
    utcnow,
)
from tests.fakes.engine import FOREVER, FakeEngine, Program


def due(command: str = "echo 'it works'", **kw: Any) -> ExecutionDue:
    return ExecutionDue(
        task_id="t",
        job_id=uuid.uuid4(),
        execution_id=new_execution_id(),
        image="img",
        command=command,
        envs={"A": "b"},
        **kw,
    )


def run(
    d: ExecutionDue, runtime: FakeEngine, limits: Limits | None = None, cancel: threading.Event | None = None
) -> list[JobMessage]:
    published: list[JobMessage] = []
    run_execution(
        d, runtime, published.append, "host-1", limits or Limits(max_log_bytes=1024), threading.Event(), cancel
    )
    return published


def test_a_successful_container_is_started_finished_done_and_removed() -> None:
    d = due()
    runtime = FakeEngine.with_program(exit_code=0, stdout=b"it works\n", stderr=b"")
    started, finished = run(d, runtime)
    assert isinstance(started, ExecutionStarted) and started.container_id == "cid-1" and started.host == "host-1"
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.stdout) == ("done", 0, "it works\n")
    assert finished.execution_id == d.execution_id
    assert runtime.started[0].argv == ["echo", "it works"]  # split like a shell, no shell added
    assert runtime.started[0].envs == {"A": "b"}
    assert runtime.removed == ["cid-1"]


def test_a_non_zero_exit_fails_with_stdout_and_stderr_kept_apart() -> None:
    _, finished = run(due(), FakeEngine.with_program(exit_code=123, stdout=b"out", stderr=b"err"))
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.stdout, finished.stderr) == ("failed", 123, "out", "err")


def test_a_container_that_cannot_run_fails_with_the_reason() -> None:
    [finished] = run(due(), FakeEngine(fail="No such image: nope"))
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.error) == ("failed", None, "No such image: nope")


def test_container_names_and_labels_come_from_the_execution() -> None:
    d = due()
    spec = container_spec(d)
    assert spec.name == f"fastlane-{d.execution_id}"
    assert spec.labels["fastlane.execution-id"] == str(d.execution_id)
    assert spec.labels["fastlane.task-id"] == "t"


def test_clip_keeps_the_end_of_long_logs_within_the_budget() -> None:
    assert clip(b"short", 10) == "short"
    clipped = clip(b"a" * 500 + b"b" * 1000, 1064)
    assert clipped.endswith("b" * 1000) and "a" not in clipped.split("\n", 1)[1]
    assert "first 500 bytes cut" in clipped
    assert len(json.dumps(clipped, ensure_ascii=False).encode()) <= 1064 + 2


def test_clip_counts_the_serialized_size_so_nul_bytes_and_quotes_fit() -> None:
    for raw, escaped in ((b"\x00" * 200_000, 6), (b'"' * 200_000, 2), (b"\\" * 200_000, 2)):
        clipped = clip(raw, 100_000)
        assert len(json.dumps(clipped, ensure_ascii=False).encode()) <= 100_002
        assert len(clipped.split("\n", 1)[1]) > 100_000 // escaped - 100  # as much of the end as fits


def test_clip_reports_what_the_runtime_dropped_before_the_tail() -> None:
    clipped = clip(LogTail(b"end of it", cut=1000), 1000)
    assert clipped == "[fastlane: first 1000 bytes cut]\nend of it"


def test_an_expired_execution_is_not_run() -> None:
    runtime = FakeEngine.with_program()
    [finished] = run(due(expiration=utcnow() - timedelta(seconds=1)), runtime)
    assert isinstance(finished, ExecutionFinished)
    assert finished.status == "expired" and "expired" in (finished.error or "")
    assert runtime.started == []


def test_a_container_running_past_its_timeout_is_stopped_and_timedout() -> None:
    runtime = FakeEngine.with_program(running_waits=FOREVER)
    _, finished = run(due(timeout_s=0), runtime, Limits(max_log_bytes=1024, stop_grace_s=3))
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code) == ("timedout", 137)  # SIGKILL after the grace, as on the engine
    assert runtime.stopped[0] == 3
    assert runtime.removed == ["cid-1"]


def test_the_hard_limit_caps_the_timeout() -> None:
    runtime = FakeEngine.with_program(running_waits=FOREVER)
    _, finished = run(due(timeout_s=3600), runtime, Limits(max_log_bytes=1024, hard_timeout_s=0))
    assert isinstance(finished, ExecutionFinished) and finished.status == "timedout"


def test_a_stop_request_while_running_ends_it_stopped() -> None:
    runtime = FakeEngine.with_program(running_waits=FOREVER)
    cancel = threading.Event()
    runtime.on_wait.append(cancel.set)
    _, finished = run(due(), runtime, cancel=cancel)
    assert isinstance(finished, ExecutionFinished)
    assert finished.status == "stopped" and runtime.stopped


def test_a_stop_request_before_it_starts_means_it_never_runs() -> None:
    runtime = FakeEngine.with_program()
    cancel = threading.Event()
    cancel.set()
    [finished] = run(due(), runtime, cancel=cancel)
    assert isinstance(finished, ExecutionFinished) and finished.status == "stopped"
    assert runtime.started == []


def test_the_slot_is_given_back_once_the_container_has_ended_before_it_is_reported() -> None:
    """An ended container no longer counts as running: the caller may start the next one while this one's
    logs are reported and it is removed."""
    runtime = FakeEngine.with_program(exit_code=0, running_waits=2)
    published: list[JobMessage] = []
    seen_at_exit: list[tuple[int, list[str]]] = []
    run_execution(
        due(),
        runtime,
        published.append,
        "host-1",
        Limits(),
        threading.Event(),
        on_exit=lambda: seen_at_exit.append((len(published), list(runtime.removed))),
    )
    assert seen_at_exit == [(1, [])]  # once; after ExecutionStarted, before ExecutionFinished and the removal
    assert isinstance(published[-1], ExecutionFinished) and runtime.removed == ["cid-1"]


class SilentEngine(FakeEngine):
    """An engine that stops answering once the container has started (for `silent_for` waits; -1: for good)."""

    def __init__(self, silent_for: int = -1) -> None:
        super().__init__(default=Program(exit_code=0))
        self.silent_for = silent_for

    def wait(self, container_id: str, seconds: float) -> int | None:
        if self.silent_for != 0:
            self.silent_for -= 1
            raise EngineUnavailable("the Docker engine does not answer: connection refused")
        return super().wait(container_id, seconds)


def test_an_execution_fails_when_its_engine_stays_silent_for_the_configured_time() -> None:
    published: list[JobMessage] = []
    exits: list[int] = []
    runtime = SilentEngine()
    answered = run_execution(
        due(),
        runtime,
        published.append,
        "host-1",
        Limits(engine_lost_after_s=0.5),
        threading.Event(),
        on_exit=lambda: exits.append(1),
    )
    finished = published[-1]
    assert isinstance(finished, ExecutionFinished) and finished.status == "failed"
    assert finished.error is not None and "engine of host host-1 has not answered for 0.5s" in finished.error
    assert (answered, exits, runtime.removed) == (False, [1], [])  # slot given back; nothing to remove it with


def test_a_short_silence_of_the_engine_is_waited_out() -> None:
    published: list[JobMessage] = []
    answered = run_execution(
        due(), SilentEngine(silent_for=2), published.append, "host-1", Limits(engine_lost_after_s=30), threading.Event()
    )
    finished = published[-1]
    assert answered and isinstance(finished, ExecutionFinished) and finished.status == "done"


def test_log_frames_are_told_apart_by_stream() -> None:
    def frame(stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    data = frame(1, b"out 1\n") + frame(2, b"err\n") + frame(1, b"out 2\n") + frame(1, b"cut sho")[:-3]
    assert demultiplex(data) == (b"out 1\nout 2\ncut ", b"err\n")
    assert demultiplex(b"") == (b"", b"")


class LogsUnreadable(FakeEngine):
    """An engine that answers until the container has ended, then not (for `silent_for` calls; -1: for good)."""

    def __init__(self, silent_for: int = -1) -> None:
        super().__init__(default=Program(exit_code=0, stdout=b"out\n"))
        self.silent_for = silent_for

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        if self.silent_for != 0:
            self.silent_for -= 1
            raise EngineUnavailable("the Docker engine does not answer: connection refused")
        return super().logs(container_id)

    def remove(self, container_id: str) -> None:
        if self.silent_for != 0:
            raise EngineUnavailable("the Docker engine does not answer: connection refused")
        super().remove(container_id)


def test_an_engine_lost_after_the_container_ended_costs_the_logs_not_a_second_run() -> None:
    published: list[JobMessage] = []
    runtime = LogsUnreadable()
    answered = run_execution(
        due(), runtime, published.append, "host-1", Limits(engine_lost_after_s=0.5), threading.Event()
    )  # returns instead of raising EngineUnavailable: nothing is handed to another host
    finished = published[-1]
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.stdout) == ("done", 0, "")
    assert finished.error is not None and "its logs could not be read" in finished.error
    assert (answered, len(runtime.started), runtime.removed) == (False, 1, [])


def test_logs_are_read_once_the_engine_answers_again() -> None:
    published: list[JobMessage] = []
    runtime = LogsUnreadable(silent_for=1)
    answered = run_execution(
        due(), runtime, published.append, "host-1", Limits(engine_lost_after_s=30), threading.Event()
    )
    finished = published[-1]
    assert isinstance(finished, ExecutionFinished) and (finished.stdout, finished.error) == ("out\n", None)
    assert answered and runtime.removed == ["cid-1"]


class CutEngineApi:
    """The low-level client of an engine whose connection is cut mid-answer (or that is merely slow)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def wait(self, container_id: str, timeout: float) -> dict[str, int]:
        raise self.error

    def stop(self, container_id: str, timeout: int) -> None:
        raise self.error


def runtime_with(api: CutEngineApi) -> DockerRuntime:
    runtime = DockerRuntime.__new__(DockerRuntime)  # no engine to connect to: only the error mapping is tested
    runtime._client = SimpleNamespace(api=api)
    return runtime


def test_an_answer_cut_midway_counts_as_an_engine_that_does_not_answer() -> None:
    runtime = runtime_with(CutEngineApi(requests.exceptions.ChunkedEncodingError("Response ended prematurely")))
    with pytest.raises(EngineUnavailable):
        runtime.wait("cid-1", 1.0)
    with pytest.raises(EngineUnavailable):
        runtime.stop("cid-1", 1.0)


def test_a_wait_that_times_out_means_still_running() -> None:
    timeout = requests.exceptions.ConnectionError(urllib3.exceptions.ReadTimeoutError(None, "/wait", "timed out"))  # type: ignore[arg-type]
    assert runtime_with(CutEngineApi(timeout)).wait("cid-1", 1.0) is None
