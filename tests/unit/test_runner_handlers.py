import threading
import uuid

from services.runner.handlers import clip, container_spec, run_execution
from services.runner.runtime import ContainerSpec, RuntimeFailure
from shared.events import ExecutionDue, ExecutionFinished, ExecutionStarted, Message, new_execution_id


class FakeRuntime:
    """In-memory container runtime: records what it was asked, answers what it was told to."""

    def __init__(self, exit_code: int = 0, stdout: bytes = b"", stderr: bytes = b"", fail: str | None = None):
        self.exit_code, self.stdout, self.stderr, self.fail = exit_code, stdout, stderr, fail
        self.started: list[ContainerSpec] = []
        self.removed: list[str] = []

    def start(self, spec: ContainerSpec) -> str:
        if self.fail:
            raise RuntimeFailure(self.fail)
        self.started.append(spec)
        return "cid-1"

    def wait(self, container_id: str, stop: threading.Event) -> int:
        return self.exit_code

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        return self.stdout, self.stderr

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)


def due(command: str = "echo 'it works'") -> ExecutionDue:
    return ExecutionDue(
        task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="img", command=command, envs={"A": "b"}
    )


def run(d: ExecutionDue, runtime: FakeRuntime) -> list[Message]:
    published: list[Message] = []
    run_execution(d, runtime, published.append, "host-1", 1024, threading.Event())
    return published


def test_a_successful_container_is_started_finished_done_and_removed() -> None:
    d = due()
    runtime = FakeRuntime(exit_code=0, stdout=b"it works\n", stderr=b"")
    started, finished = run(d, runtime)
    assert isinstance(started, ExecutionStarted) and started.container_id == "cid-1" and started.host == "host-1"
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.stdout) == ("done", 0, "it works\n")
    assert finished.execution_id == d.execution_id
    assert runtime.started[0].argv == ["echo", "it works"]  # split like a shell, no shell added
    assert runtime.started[0].envs == {"A": "b"}
    assert runtime.removed == ["cid-1"]


def test_a_non_zero_exit_fails_with_stdout_and_stderr_kept_apart() -> None:
    _, finished = run(due(), FakeRuntime(exit_code=123, stdout=b"out", stderr=b"err"))
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.stdout, finished.stderr) == ("failed", 123, "out", "err")


def test_a_container_that_cannot_run_fails_with_the_reason() -> None:
    [finished] = run(due(), FakeRuntime(fail="No such image: nope"))
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.exit_code, finished.error) == ("failed", None, "No such image: nope")


def test_container_names_and_labels_come_from_the_execution() -> None:
    d = due()
    spec = container_spec(d)
    assert spec.name == f"fastlane-{d.execution_id}"
    assert spec.labels["fastlane.execution-id"] == str(d.execution_id)
    assert spec.labels["fastlane.task-id"] == "t"


def test_clip_keeps_the_end_of_long_logs() -> None:
    assert clip(b"short", 10) == "short"
    clipped = clip(b"a" * 5 + b"b" * 10, 10)
    assert clipped.endswith("b" * 10)
    assert "first 5 bytes cut" in clipped
