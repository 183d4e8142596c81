"""The write use case: accept an order. Publish it (in a Kafka transaction, services/api/orders.py), then
project it at once so that a GET right after the request already sees it; with an Idempotency-Key, claim the
key first and, on a retry, accept the order the key was first used for (services/api/idempotency.py).

When `accept` raises Unavailable (503) the order is not enqueued and never will be; OutcomeUnknown (504) is the
one case the API cannot tell. The recorder writes the same rows from the same event with the same write
timestamp, so the early projection and the recorder's converge; if the early one fails the recorder's still
lands, and the client's order is not lost.
"""

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

from services.api.errors import KeyReused, OutcomeUnknown, Unavailable
from services.api.idempotency import PUBLISHED, REFUSED, UNKNOWN, Claimed
from services.api.orders import NotEnqueued
from services.api.orders import OutcomeUnknown as OrderOutcomeUnknown
from services.api.ports import EarlyProjection, IdempotencyKeyStore, OrderPublishing
from shared.contract.events import Command, HostBlacklisted, JobRequested, JobUpdated, decode, encode
from shared.contract.topics import Topics
from shared.process.metrics import JOBS_ACCEPTED, ORDERS_REFUSED

log = logging.getLogger(__name__)

JobCommand = TypeVar("JobCommand", JobRequested, JobUpdated)


@dataclass(frozen=True)
class JobOrderDraft(Generic[JobCommand]):
    """A job order ready to accept (services/api/job_orders.py builds it): the command, its encoding (the one
    measured is the one published) and the request body it came from (a key's fingerprint covers it)."""

    command: JobCommand
    encoded: bytes
    body: bytes


class Acceptor:
    """Accepts the API's orders; built once by services/api/bootstrap.py, reached through deps.WritesDep."""

    def __init__(
        self, publisher: OrderPublishing, projection: EarlyProjection, keys: IdempotencyKeyStore, topics: Topics
    ) -> None:
        self.publisher = publisher
        self.projection = projection
        self.keys = keys
        self.topics = topics

    def accept(
        self, command: Command | HostBlacklisted, topic: str | None = None, encoded: bytes | None = None
    ) -> None:
        """Publish the order (on the jobs topic unless told), then project it; see the module's doc."""
        with self._verdict(command):
            self.publisher.publish(topic or self.topics.jobs, command.key, encoded or encode(command))
        try:
            self.projection.apply(command)
        except Exception:
            log.exception("early projection failed; the recorder will write it", extra=self._context(command))

    async def accept_async(self, command: Command, encoded: bytes) -> None:
        """`accept` on the jobs topic for a caller on the event loop: nothing blocks a thread meanwhile."""
        with self._verdict(command):
            await self.publisher.publish_async(self.topics.jobs, command.key, encoded)
        try:
            await self.projection.apply_async(command)
        except Exception:
            log.exception("early projection failed; the recorder will write it", extra=self._context(command))

    async def accept_job_async(
        self, draft: JobOrderDraft[JobCommand], key: str | None, request_print: str
    ) -> tuple[JobCommand, bool]:
        """`accept_job` for a caller on the event loop; an order with an Idempotency-Key (reads, waits) takes a
        worker thread, one without none."""
        if key is None:
            await self.accept_async(draft.command, draft.encoded)
            accepted: tuple[JobCommand, bool] = (draft.command, False)
        else:
            accepted = await run_in_threadpool(self.accept_job, draft, key, request_print)
        JOBS_ACCEPTED.labels("created" if isinstance(draft.command, JobRequested) else "updated").inc()
        return accepted

    @staticmethod
    def _context(command: Command | HostBlacklisted) -> dict[str, str]:
        return {"type": command.type, "key": command.key.decode()}

    @contextlib.contextmanager
    def _verdict(self, command: Command | HostBlacklisted) -> Iterator[None]:
        """The publisher's verdict as the API answers it: 503 (not enqueued) or 504 (cannot tell)."""
        try:
            yield
        except NotEnqueued as exc:
            ORDERS_REFUSED.labels("503").inc()
            log.error("order not enqueued", extra={**self._context(command), "error": str(exc)})
            raise Unavailable("the job queue is unavailable right now; nothing was changed, try again") from exc
        except OrderOutcomeUnknown as exc:
            ORDERS_REFUSED.labels("504").inc()
            log.error("order outcome unknown", extra={**self._context(command), "error": str(exc)})
            raise OutcomeUnknown(
                "the job queue did not confirm in time whether it took the order; it may or may not have. Retry"
                " with the same Idempotency-Key (or the same PUT) to be sure of exactly one job"
            ) from exc

    def accept_job(
        self, draft: JobOrderDraft[JobCommand], key: str | None, request_print: str
    ) -> tuple[JobCommand, bool]:
        """Accept a POST's or PUT's order; with an Idempotency-Key, the order the key was first used for.
        Returns the order accepted and whether it is a replay of the key's first one. `request_print` is the
        request's idempotency.fingerprint (unused without a key)."""
        command, encoded = draft.command, draft.encoded
        if key is None:
            self.accept(command, encoded=encoded)
            return command, False
        task_id = command.task_id
        try:
            claimed = self.keys.claim(task_id, key, request_print, encoded)
        except Exception as exc:  # nothing was published: the order is not enqueued (a retry may find the key)
            log.error("could not claim an idempotency key", extra={"task_id": task_id, "error": str(exc)})
            raise Unavailable("the job store is unavailable right now; nothing was enqueued, try again") from exc
        if claimed is None:
            self._publish_claimed(command, encoded, key)
            return command, False
        if claimed.fingerprint != request_print:
            raise KeyReused(
                f"Idempotency-Key {key[:100]!r} was already used in task {task_id!r} for a different request"
                " (method, path or body); send a new key for a new job"
            )
        first = decode(claimed.command)
        if not isinstance(first, type(command)):  # a fingerprint collision of POST and PUT cannot happen; be sure
            raise KeyReused(f"Idempotency-Key {key[:100]!r} was already used in task {task_id!r} for another request")
        if self._wait_for_first(task_id, key, claimed) != PUBLISHED:
            # Its first publishing failed, was not known to succeed, or its request died: the same order again.
            self._publish_claimed(first, claimed.command, key)
        return first, True

    def _wait_for_first(self, task_id: str, key: str, claimed: Claimed) -> str | None:
        """The key's state once its first request has answered (a concurrent request with the same key may
        still be publishing: waited for, so that it is not published twice), or as it stands after that
        request's longest possible wait."""
        publisher = self.publisher
        budget = publisher.ack_timeout_s * 2 + publisher.commit_patience_s + 5 - claimed.age_s
        state, deadline = claimed.state, time.monotonic() + budget
        while state is None and time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                state = self.keys.state(task_id, key)
            except Exception:
                log.exception("could not read an idempotency key's state")
        return state

    def _publish_claimed(self, command: Command, encoded: bytes, key: str) -> None:
        """Publish a claimed key's order and note how it went (best effort: a state left unwritten only costs
        a retry one more publishing of the same order)."""
        try:
            self.accept(command, encoded=encoded)
            state = PUBLISHED
        except Unavailable:
            state = REFUSED
            raise
        except OutcomeUnknown:
            state = UNKNOWN
            raise
        finally:
            try:
                self.keys.set_state(command.task_id, key, state)
            except Exception:
                log.exception("could not note an idempotency key's state", extra={"task_id": command.task_id})
