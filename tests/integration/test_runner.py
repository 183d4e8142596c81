"""The Docker adapter against the real engine, and the runner service between real Kafka topics."""

import uuid

import docker
import pytest

from services.runner.bootstrap import serve
from services.runner.ports import ContainerSpec, RuntimeFailure
from services.runner.runtime import DockerRuntime
from shared.contract.events import ExecutionDue, ExecutionFinished, ExecutionStarted, new_execution_id
from shared.contract.topics import Topics
from shared.infra.kafka import EventProducer
from shared.process.settings import RunnerSettings
from tests.conftest import TEST_IMAGE
from tests.helpers import eventually, read_events, start_thread


@pytest.fixture
def runtime(backends: RunnerSettings) -> DockerRuntime:
    return DockerRuntime(backends.docker_host)


def spec(*argv: str, image: str = TEST_IMAGE) -> ContainerSpec:
    return ContainerSpec(name=f"fastlane-test-{uuid.uuid4()}", image=image, argv=list(argv), envs={"GREETING": "hi"})


def run_to_end(runtime: DockerRuntime, s: ContainerSpec) -> tuple[int, bytes, bytes]:
    cid = runtime.start(s).container_id
    try:
        code = runtime.wait(cid, 30)
        assert code is not None
        out, err = runtime.logs(cid)
        return code, out, err
    finally:
        runtime.remove(cid)


def test_exit_code_and_separate_streams(runtime: DockerRuntime) -> None:
    code, out, err = run_to_end(runtime, spec("bash", "-c", 'echo "$GREETING out"; echo err >&2; exit 7'))
    assert (code, out, err) == (7, b"hi out\n", b"err\n")


def test_a_missing_command_fails_to_start_with_the_engine_message_and_leaves_no_container(
    runtime: DockerRuntime,
) -> None:
    s = spec("no-such-binary")
    with pytest.raises(RuntimeFailure, match="no-such-binary"):
        runtime.start(s)
    with pytest.raises(docker.errors.NotFound):  # not left `Created` on the engine
        docker.from_env().containers.get(s.name)


def test_logs_keep_the_end_of_each_stream_and_count_the_rest(backends: RunnerSettings) -> None:
    runtime = DockerRuntime(backends.docker_host, log_tail_bytes=1000)
    code, out, err = run_to_end(runtime, spec("bash", "-c", "seq 1 100000; seq 1 50000 >&2"))
    assert code == 0
    assert out.endswith(b"99999\n100000\n") and len(out) == 1000
    assert err.endswith(b"50000\n") and len(err) == 1000
    assert getattr(out, "cut", 0) == len("".join(f"{i}\n" for i in range(1, 100001))) - 1000


def test_a_missing_image_fails_with_the_registry_message(runtime: DockerRuntime) -> None:
    with pytest.raises(RuntimeFailure) as info:
        runtime.start(spec("true", image="127.0.0.1:5999/nope/never:1"))
    assert "127.0.0.1:5999" in str(info.value)


def test_starting_the_same_execution_twice_reuses_its_container(runtime: DockerRuntime) -> None:
    s = spec("sleep", "1")
    first = runtime.start(s).container_id
    try:
        assert runtime.start(s).container_id == first
        assert runtime.wait(first, 30) == 0
    finally:
        runtime.remove(first)


def test_the_runner_service_runs_due_executions(own_topics: RunnerSettings) -> None:
    backends = own_topics  # no other runner of the session (the e2e stack's) takes these executions
    topics = Topics.from_settings(backends)
    producer = EventProducer(backends)
    dues = [
        ExecutionDue(
            task_id="run", job_id=uuid.uuid4(), execution_id=new_execution_id(), image=TEST_IMAGE, command=command
        )
        for command in ("echo 'it works'", "bash -c 'echo bad >&2; exit 3'", "qwe-not-here")
    ]
    for d in dues:
        producer.publish(topics.due, d)
    thread, stop = start_thread(serve, backends.model_copy(update={"host_name": f"itest-{uuid.uuid4().hex[:6]}"}))
    try:

        def finished() -> dict[uuid.UUID, ExecutionFinished] | None:
            events = read_events(backends.kafka_bootstrap, topics.executions, 0, timeout=2)
            done = {e.execution_id: e for e in events if isinstance(e, ExecutionFinished)}
            return done if all(d.execution_id in done for d in dues) else None

        done = eventually(finished, timeout=90, what="three ExecutionFinished events")
        ok, bad, missing = (done[d.execution_id] for d in dues)
        assert (ok.status, ok.exit_code, ok.stdout) == ("done", 0, "it works\n")
        assert (bad.status, bad.exit_code, bad.stderr) == ("failed", 3, "bad\n")
        assert missing.status == "failed" and missing.exit_code is None and "qwe-not-here" in (missing.error or "")
        events = read_events(backends.kafka_bootstrap, topics.executions, 0, timeout=2)
        started = {e.execution_id for e in events if isinstance(e, ExecutionStarted)}
        assert dues[0].execution_id in started and dues[1].execution_id in started
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()


def test_stop_ends_a_running_container(runtime: DockerRuntime) -> None:
    s = spec("sleep", "60")
    cid = runtime.start(s).container_id
    try:
        assert runtime.wait(cid, 0.5) is None  # still running
        runtime.stop(cid, 1)
        # PID 1 without a SIGTERM handler ignores SIGTERM, so the engine sends SIGKILL after the grace: 137.
        assert runtime.wait(cid, 10) == 137
    finally:
        runtime.remove(cid)
