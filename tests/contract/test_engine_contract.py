"""The ContainerRuntime port's contract, run against the fake engine (tests/fakes/engine.py) and DockerRuntime on
the real local engine with the test image: what the runner relies on, so the fake cannot drift from the engine.

The fake is told what each command of these tests does (PROGRAMS); the real engine runs it.
"""

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from services.runner.docker_runtime import DockerRuntime
from services.runner.ports import LABEL, ContainerRuntime, ContainerSpec, RuntimeFailure
from shared.contract.events import utcnow
from tests.conftest import TEST_IMAGE
from tests.fakes.engine import FOREVER, FakeEngine, Program

GREETS = ("bash", "-c", 'echo "$GREETING out"; echo err >&2; exit 7')
HOSTILE = ("bash", "-c", r"printf 'a\0b\377\n'; printf '\0\376' >&2")
RUNS = ("sleep", "60")
SHORT = ("sleep", "1")
COUNTS = ("bash", "-c", "seq 1 20000; seq 1 10000 >&2")
MISSING = ("no-such-binary",)


def seq(n: int) -> bytes:
    return "".join(f"{i}\n" for i in range(1, n + 1)).encode()


PROGRAMS = {
    GREETS: Program(7, b"hi out\n", b"err\n"),
    HOSTILE: Program(0, b"a\x00b\xff\n", b"\x00\xfe"),
    RUNS: Program(running_waits=FOREVER),
    SHORT: Program(0),
    COUNTS: Program(0, seq(20000), seq(10000)),
}

MakeEngine = Callable[..., ContainerRuntime]


@pytest.fixture(params=["fake", "docker"])
def make_engine(request: pytest.FixtureRequest) -> Iterator[MakeEngine]:
    """Builds the engine under test (keyword arguments: `log_tail_bytes`); what the test started is removed after."""
    made: list[ContainerRuntime] = []

    def make(**kwargs: int) -> ContainerRuntime:
        if request.param == "fake":
            engine: ContainerRuntime = FakeEngine(programs=PROGRAMS, images={TEST_IMAGE}, **kwargs)
        else:
            engine = DockerRuntime(request.getfixturevalue("backends").docker_host, **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        for container_id, execution_id, _ in list(engine.executions()):
            if execution_id in started_here:
                engine.remove(container_id)


started_here: set[str] = set()  # execution ids of the containers these tests started (the engine is shared)


@pytest.fixture
def engine(make_engine: MakeEngine) -> ContainerRuntime:
    return make_engine()


def spec(argv: tuple[str, ...], image: str = TEST_IMAGE) -> ContainerSpec:
    execution_id = str(uuid.uuid4())
    started_here.add(execution_id)
    return ContainerSpec(
        name=f"fastlane-contract-{execution_id}",
        image=image,
        argv=list(argv),
        envs={"GREETING": "hi"},
        labels={LABEL: execution_id},
    )


def run_to_end(engine: ContainerRuntime, s: ContainerSpec) -> tuple[int, bytes, bytes]:
    container_id = engine.start(s).container_id
    try:
        code = engine.wait(container_id, 30)
        assert code is not None
        out, err = engine.logs(container_id)
        return code, out, err
    finally:
        engine.remove(container_id)


def listed(engine: ContainerRuntime, s: ContainerSpec) -> list[tuple[str, str]]:
    """(container id, state) of the containers of the spec's execution."""
    return [(cid, state) for cid, eid, state in engine.executions() if eid == s.labels[LABEL]]


def test_an_engine_that_answers_pings(engine: ContainerRuntime) -> None:
    assert engine.ping() is True


def test_the_exit_code_and_the_two_streams_come_back_apart(engine: ContainerRuntime) -> None:
    assert run_to_end(engine, spec(GREETS)) == (7, b"hi out\n", b"err\n")


def test_logs_keep_nul_bytes_and_replace_invalid_utf8_byte_by_byte(engine: ContainerRuntime) -> None:
    # (The engine's log driver keeps lines as JSON strings: each byte that is not UTF-8 becomes U+FFFD.)
    assert run_to_end(engine, spec(HOSTILE)) == (0, "a\x00b\ufffd\n".encode(), "\x00\ufffd".encode())


def test_only_the_end_of_each_stream_is_kept_and_what_came_before_is_counted(make_engine: MakeEngine) -> None:
    code, out, err = run_to_end(make_engine(log_tail_bytes=1000), spec(COUNTS))
    assert code == 0
    assert out.endswith(b"19999\n20000\n") and len(out) == 1000
    assert err.endswith(b"10000\n") and len(err) == 1000
    assert getattr(out, "cut", 0) == len(seq(20000)) - 1000


def test_the_followed_output_is_the_whole_output_in_order_and_ends_with_the_container(
    engine: ContainerRuntime,
) -> None:
    for argv, out, err in (
        (GREETS, b"hi out\n", b"err\n"),
        (HOSTILE, "a\x00b\ufffd\n".encode(), "\x00\ufffd".encode()),
    ):
        container_id = engine.start(spec(argv)).container_id
        frames = list(engine.follow(container_id))  # ends by itself once the container has ended
        assert engine.wait(container_id, 5) is not None
        assert b"".join(data for kind, data in frames if kind == 1) == out
        assert b"".join(data for kind, data in frames if kind == 2) == err
        engine.remove(container_id)


def test_following_a_running_container_waits_for_its_end(engine: ContainerRuntime) -> None:
    container_id = engine.start(spec(RUNS)).container_id
    frames: list[tuple[int, bytes]] = []
    reader = threading.Thread(target=lambda: frames.extend(engine.follow(container_id)), daemon=True)
    reader.start()
    reader.join(1.0)
    assert reader.is_alive()  # the container runs: the stream stays open
    engine.stop(container_id, 0)
    reader.join(30)
    assert not reader.is_alive() and frames == []  # `sleep` wrote nothing; the stream ended with the container
    engine.remove(container_id)


def test_a_running_container_is_waited_for_then_stopped_and_killed_after_its_grace(engine: ContainerRuntime) -> None:
    s = spec(RUNS)
    container_id = engine.start(s).container_id
    assert engine.wait(container_id, 0.5) is None  # still running: the wait timed out
    assert engine.finished_at(container_id) is None
    assert listed(engine, s) == [(container_id, "running")]
    before = utcnow()
    engine.stop(container_id, 1)
    # Its PID 1 has no SIGTERM handler: it ignores SIGTERM and is killed after the grace.
    assert engine.wait(container_id, 10) == 137
    finished = engine.finished_at(container_id)
    assert finished is not None and before - timedelta(seconds=5) <= finished <= utcnow() + timedelta(seconds=5)
    assert listed(engine, s) == [(container_id, "exited")]
    engine.stop(container_id, 1)  # an ended container: nothing to do
    assert engine.wait(container_id, 10) == 137


def test_a_removed_container_is_no_longer_listed_and_removing_it_again_is_no_error(engine: ContainerRuntime) -> None:
    s = spec(RUNS)
    container_id = engine.start(s).container_id
    engine.remove(container_id)  # running or not
    assert listed(engine, s) == [] and engine.finished_at(container_id) is None
    engine.remove(container_id)
    engine.stop(container_id, 1)


def test_a_container_is_found_by_its_name_too(engine: ContainerRuntime) -> None:
    s = spec(RUNS)
    engine.start(s)
    engine.stop(s.name, 0)
    assert engine.wait(s.name, 10) == 137
    engine.remove(s.name)
    assert listed(engine, s) == []


def test_starting_the_same_execution_twice_reuses_its_container(engine: ContainerRuntime) -> None:
    s = spec(SHORT)
    first = engine.start(s)
    again = engine.start(s)
    try:
        assert first.started_at is None  # created here: the runner takes its own time
        assert again.container_id == first.container_id and again.started_at is not None
        assert engine.wait(first.container_id, 30) == 0
        assert [cid for cid, _ in listed(engine, s)] == [first.container_id]
    finally:
        engine.remove(first.container_id)


def test_a_binary_missing_from_the_image_fails_to_start_and_leaves_no_container(engine: ContainerRuntime) -> None:
    s = spec(MISSING)
    with pytest.raises(RuntimeFailure, match="no-such-binary"):
        engine.start(s)
    assert listed(engine, s) == []


def test_a_missing_image_fails_to_start_with_the_registrys_message(engine: ContainerRuntime) -> None:
    pulls: list[int] = []
    s = spec(SHORT, image="127.0.0.1:5999/nope/never:1")
    with pytest.raises(RuntimeFailure, match=re.escape("127.0.0.1:5999")):
        engine.start(s, on_pull=lambda: pulls.append(1))
    assert pulls == [1] and listed(engine, s) == []  # the runner says it is pulling (ExecutionPulling)


def test_only_labelled_containers_are_executions(engine: ContainerRuntime) -> None:
    s = spec(RUNS)
    unlabelled = ContainerSpec(name=f"fastlane-contract-{uuid.uuid4()}", image=TEST_IMAGE, argv=list(RUNS))
    labelled_id, other_id = engine.start(s).container_id, engine.start(unlabelled).container_id
    try:
        ids = {cid for cid, _, _ in engine.executions()}
        assert labelled_id in ids and other_id not in ids
    finally:
        engine.remove(other_id)
