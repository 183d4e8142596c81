"""The runner service between real Kafka topics, with the real engine and ledger. (The Docker adapter itself is
held to the engine port's contract: tests/contract/test_engine_contract.py.)"""

import uuid

from services.runner.bootstrap import serve
from shared.contract.events import ExecutionDue, ExecutionFinished, ExecutionStarted, new_execution_id
from shared.contract.topics import Topics
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import RunnerSettings
from tests.conftest import TEST_IMAGE
from tests.helpers import eventually, read_to_end, start_thread


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
            events = read_to_end(backends.kafka_bootstrap, topics.executions)
            done = {e.execution_id: e for e in events if isinstance(e, ExecutionFinished)}
            return done if all(d.execution_id in done for d in dues) else None

        done = eventually(finished, timeout=90, what="three ExecutionFinished events")
        ok, bad, missing = (done[d.execution_id] for d in dues)
        assert (ok.status, ok.exit_code, ok.stdout) == ("done", 0, "it works\n")
        assert (bad.status, bad.exit_code, bad.stderr) == ("failed", 3, "bad\n")
        assert missing.status == "failed" and missing.exit_code is None and "qwe-not-here" in (missing.error or "")
        events = read_to_end(backends.kafka_bootstrap, topics.executions)  # each start was published before its end
        started = {e.execution_id for e in events if isinstance(e, ExecutionStarted)}
        assert dues[0].execution_id in started and dues[1].execution_id in started
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
