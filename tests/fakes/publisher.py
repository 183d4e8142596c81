"""A publisher that keeps what it was given (the Publisher port of the runner), held to EventProducer's
behaviour on the real broker by tests/contract/test_publisher_contract.py."""

from dataclasses import dataclass, field

from shared.contract.events import HostEvent, JobMessage
from tests.fakes.outage import NotAnswering


@dataclass
class RecordingPublisher:
    """Keeps every event it was given, by topic. `answering` False: every publish raises, like a broker that does
    not take the message."""

    answering: bool = True
    published: list[tuple[str, JobMessage | HostEvent]] = field(default_factory=list)

    def publish(self, topic: str, event: JobMessage | HostEvent) -> None:
        if not self.answering:
            raise NotAnswering("the broker does not answer")
        self.published.append((topic, event))

    def on(self, topic: str) -> list[JobMessage | HostEvent]:
        return [event for to, event in self.published if to == topic]
