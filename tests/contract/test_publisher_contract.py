"""The Publisher port's contract (services/runner/ports.py), run against the recording fake
(tests/fakes/publisher.py) and EventProducer on the real broker: what `publish` returned for is on the topic, a
job's events in the order they were published, whole; a broker that does not take the message makes `publish`
raise an error the consumers treat as an outage (waited out, never parked)."""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from services.devstack import free_port
from services.runner.ports import Publisher
from shared.contract.events import ExecutionFinished, ExecutionStarted, JobMessage, new_execution_id
from shared.contract.topics import Topics
from shared.infra.failures import is_transient
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import Settings
from tests.fakes.publisher import RecordingPublisher
from tests.helpers import read_to_end


@dataclass
class PublisherUnderTest:
    """A publisher, what is on a topic now (as the port's users would read it), and how to make its broker stop
    answering."""

    publisher: Publisher
    topic: str
    on_topic: Callable[[str], list[JobMessage]]
    silence: Callable[[], Publisher]


@pytest.fixture(params=["fake", "kafka"])
def under_test(request: pytest.FixtureRequest) -> Iterator[PublisherUnderTest]:
    if request.param == "fake":
        fake = RecordingPublisher()

        def silenced_fake() -> Publisher:
            fake.answering = False
            return fake

        def on_fake_topic(topic: str) -> list[JobMessage]:
            return [e for e in fake.on(topic) if isinstance(e, JobMessage)]

        yield PublisherUnderTest(fake, "executions", on_fake_topic, silenced_fake)
        return
    settings: Settings = request.getfixturevalue("own_topics")
    producer = EventProducer(settings)
    # free_port: a loopback port nothing listens on (bound, then released).
    nowhere = EventProducer(settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}))

    def on_topic(topic: str) -> list[JobMessage]:
        # publish() returns once the broker acknowledged: what was published is on the topic, to its end.
        events = read_to_end(settings.kafka_bootstrap, topic)
        return [e for e in events if isinstance(e, JobMessage)]

    def silenced() -> Publisher:
        # EventProducer.publish waits 12 s by default; the port's callers pass none, so neither does this test.
        return nowhere

    try:
        yield PublisherUnderTest(producer, Topics.from_settings(settings).executions, on_topic, silenced)
    finally:
        producer.close()


def test_a_jobs_events_are_on_the_topic_in_publishing_order_and_whole(under_test: PublisherUnderTest) -> None:
    topic = under_test.topic
    job_id, execution_id = uuid.uuid4(), new_execution_id()
    odd = "NUL \x00, a lone surrogate's stand-in \ufffd, and é" * 100
    sent: list[JobMessage] = [
        ExecutionStarted(task_id="t", job_id=job_id, execution_id=execution_id, host="h", container_id="c"),
        ExecutionFinished(
            task_id="t", job_id=job_id, execution_id=execution_id, status="done", exit_code=0, stdout=odd, host="h"
        ),
    ]
    for event in sent:
        under_test.publisher.publish(topic, event)
    mine = [e for e in under_test.on_topic(topic) if e.job_id == job_id]
    assert [e.event_id for e in mine] == [e.event_id for e in sent]
    assert mine == sent


def test_a_broker_that_does_not_take_the_message_makes_publish_raise_an_outage(
    under_test: PublisherUnderTest,
) -> None:
    topic = under_test.topic
    silent = under_test.silence()
    event = ExecutionStarted(
        task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), host="h", container_id="c"
    )
    with pytest.raises(Exception) as raised:
        silent.publish(topic, event)
    assert is_transient(raised.value), f"{raised.value!r} would be parked as poison instead of waited out"
