"""The notifier's loop: the `executions` consumer plans (handlers.py), the dispatcher delivers (dispatcher.py),
a third thread looks again at the events waiting for their job's row. Partitions assigned to this notifier
bring their pending deliveries with them (taken up from the store); partitions taken away leave theirs."""

import logging
import threading

from confluent_kafka import Consumer, TopicPartition

from services.notifier.dispatcher import Dispatcher
from services.notifier.handlers import Planner
from services.notifier.plan import Delivery
from services.notifier.ports import DeliveryStore
from shared.contract.topics import Topics, group_id
from shared.infra.kafka.consumer import retry_until_done, run_consumer
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import NotifierSettings

log = logging.getLogger("notifier")


def run(
    settings: NotifierSettings,
    planner: Planner,
    dispatcher: Dispatcher,
    store: DeliveryStore,
    producer: EventProducer,
    stop: threading.Event,
) -> None:
    if not settings.webhook_secret:
        log.warning("FASTLANE_WEBHOOK_SECRET is not set: webhooks go out unsigned")
    delivering = threading.Thread(target=dispatcher.run, name="dispatcher", daemon=True)
    delivering.start()

    def wait_for_rows() -> None:
        """Look again, every `notify_job_recheck_s`, at the waiting events of the partitions this one owns."""
        while not stop.wait(settings.notify_job_recheck_s):
            planner.recheck(dispatcher.owned())

    rechecking = threading.Thread(target=wait_for_rows, name="waiting", daemon=True)
    rechecking.start()

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [p.partition for p in partitions]
        taken_up: list[Delivery] = []
        context: dict[str, object] = {"step": "reading pending deliveries", "partitions": numbers}
        retry_until_done(lambda: taken_up.extend(store.pending(numbers)), stop, context)
        if taken_up:
            log.info("taking up pending deliveries", extra={"count": len(taken_up), "partitions": numbers})
        dispatcher.own(numbers, taken_up)

    def on_revoke(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dispatcher.disown([p.partition for p in partitions])

    try:
        run_consumer(
            settings,
            group_id(settings, "notifier"),
            [Topics.from_settings(settings).executions],
            planner.handle,
            producer,
            stop,
            on_assign=on_assign,
            on_revoke=on_revoke,
        )
    finally:
        delivering.join(timeout=settings.webhook_timeout_s + 5)
        rechecking.join(timeout=15)
