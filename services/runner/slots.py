"""Counting what a runner has in hand: the executions it holds, and the `capacity` slots their containers take.

A message taken from the farm's topic is held at once (so a redelivery of it is not run twice here) and queued for
a worker thread; the worker takes a slot before it claims and starts the container, and gives it back as soon as
the container has ended (before its logs are read and reported: an ended container no longer runs). Messages are
taken ahead of a free slot, up to `lookahead` of them: a freed slot starts the next one at once instead of waiting
for a fetch from the broker (hundreds of ms after a resume, measured).
"""

import threading
import uuid

from shared.process.metrics import RUNNER_SLOTS, RUNNER_SLOTS_USED


class Slots:
    def __init__(self, capacity: int, lookahead: int | None = None) -> None:
        self.capacity = capacity
        self.lookahead = capacity if lookahead is None else lookahead
        self._lock = threading.Lock()
        self._slot_free = threading.Condition(self._lock)
        self._held: set[uuid.UUID] = set()  # in hand: running, or queued for a worker
        self._running = 0  # slots taken: containers being started or running (at most `capacity`)
        RUNNER_SLOTS.set(capacity)
        RUNNER_SLOTS_USED.set(0)
        self._unsettled = 0  # handed to a worker, neither claimed nor skipped yet
        self._draining = False  # leaving the group: queued messages are left to the farm
        self._freed = threading.Event()  # wakes the poll loop when a message in hand is done with

    # --- what is held ---

    def hold(self, execution_id: uuid.UUID) -> bool:
        """Note that this runner has the execution in hand; False when it had it already."""
        with self._lock:
            if execution_id in self._held:
                return False
            self._held.add(execution_id)
            return True

    def let_go(self, execution_id: uuid.UUID) -> None:
        """The execution is done with here (ended, handed back, or left to the farm)."""
        with self._lock:
            self._held.discard(execution_id)
        self._freed.set()

    def held(self) -> set[uuid.UUID]:
        with self._lock:
            return set(self._held)

    def in_hand(self) -> int:
        with self._lock:
            return len(self._held)

    def full(self) -> bool:
        """Capacity plus look-ahead executions are in hand: take no more messages."""
        return self.in_hand() >= self.capacity + self.lookahead

    def wait_freed(self, seconds: float) -> None:
        """Return when a message in hand is done with, or after `seconds`."""
        if self._freed.wait(seconds):
            self._freed.clear()

    # --- messages handed to a worker, not yet claimed ---

    def queued(self) -> None:
        with self._lock:
            self._unsettled += 1

    def settled(self) -> None:
        """The queued message was claimed (or skipped): it may be acknowledged."""
        with self._lock:
            self._unsettled -= 1

    def settling(self) -> int:
        with self._lock:
            return self._unsettled

    def drain(self, draining: bool = True) -> None:
        """Leaving the farm's group (True) or joining it again (False): while draining, queued messages take no
        slot and are left, unacknowledged, to the farm."""
        self._draining = draining

    # --- running containers ---

    def running(self) -> int:
        with self._lock:
            return self._running

    def take(self, stop: threading.Event) -> bool:
        """Wait for one of the `capacity` slots; False when the runner stops or leaves its farm's group first
        (the message is then left unacknowledged, to the farm)."""
        with self._slot_free:
            while self._running >= self.capacity and not (self._draining or stop.is_set()):
                self._slot_free.wait(0.2)
            if self._draining or stop.is_set():
                return False
            self._running += 1
            RUNNER_SLOTS_USED.set(self._running)
            return True

    def take_at_once(self) -> None:
        """A slot for a container running already (taken up after a restart), whatever the count."""
        with self._lock:
            self._running += 1
            RUNNER_SLOTS_USED.set(self._running)

    def give(self) -> None:
        with self._slot_free:
            self._running -= 1
            RUNNER_SLOTS_USED.set(self._running)
            self._slot_free.notify()


class Slot:
    """The slot of one execution: given back once, when its container has ended or when its work ends without
    one (whichever comes first)."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._taken = False

    def take(self, stop: threading.Event) -> bool:
        self._taken = self._slots.take(stop)
        return self._taken

    def take_at_once(self) -> None:
        self._slots.take_at_once()
        self._taken = True

    def give(self) -> None:
        if self._taken:
            self._taken = False
            self._slots.give()
