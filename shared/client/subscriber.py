"""Subscribing to fastlane's execution events (the public `executions` topic; docs/events.md) from another
program: each message decoded into its event model (shared/contract/events.py), at least once, duplicates
dropped by `event_id`.

    from shared.client import Subscriber
    with Subscriber("127.0.0.1:9092", group="billing") as events:
        for event in events.follow(task_id="reports"):
            print(event.type, event.execution_id, getattr(event, "status", ""))

At least once: a message's offset is stored only when the caller asks for the next one (its handling of this one
returned), then committed; a subscriber that dies mid-handling gets that message again. A redelivered message
(or one published twice) with an `event_id` seen recently by this subscriber is skipped. A message outside the
contract is skipped, not raised: one bad producer must not stop every subscriber.
"""

import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from types import TracebackType

from confluent_kafka import Consumer, TopicPartition
from pydantic import ValidationError

from shared.contract.events import Event, decode
from shared.contract.topics import Topics
from shared.process.settings import Settings

log = logging.getLogger(__name__)
REMEMBERED = 100_000  # event ids kept for dropping duplicates


class Subscriber:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: list[str] | None = None,
        from_beginning: bool = False,
        topic_prefix: str = "fastlane.",
        remembered: int = REMEMBERED,
    ) -> None:
        self.topics = topics or [Topics.from_settings(Settings(topic_prefix=topic_prefix)).executions]
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "isolation.level": "read_committed",
            }
        )
        self._seen: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._remembered = remembered
        self.assigned = False

    def _fresh(self, event: Event) -> bool:
        """False for an event id seen recently (then it is not handed out again)."""
        if event.event_id in self._seen:
            return False
        self._seen[event.event_id] = None
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        return True

    def follow(self, task_id: str | None = None, timeout: float | None = None) -> Iterator[Event]:
        """The events as they come (of one task with `task_id`), until the caller stops iterating; with
        `timeout`, also ends after that many seconds without a message."""

        def assigned(_consumer: Consumer, _partitions: list[TopicPartition]) -> None:
            self.assigned = True

        self._consumer.subscribe(self.topics, on_assign=assigned)
        quiet = 0.0
        while True:
            msg = self._consumer.poll(0.5)
            if msg is None:
                quiet += 0.5
                if timeout is not None and quiet >= timeout:
                    return
                continue
            if msg.error():
                log.warning("kafka: %s", msg.error())
                continue
            quiet = 0.0
            try:
                event = decode(msg.value() or b"")
            except ValidationError:
                log.warning("skipped a message outside the contract at %s/%s", msg.partition(), msg.offset())
                event = None
            if (
                event is not None
                and self._fresh(event)
                and (task_id is None or getattr(event, "task_id", None) == task_id)
            ):
                yield event  # the caller handles it; its offset is stored only once it asks for the next one
            self._consumer.store_offsets(msg)

    def close(self) -> None:
        """Commit what was handled and leave the group."""
        self._consumer.close()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
