"""Judging farm peers lost, without trusting anyone's clock or the recorder.

Each runner rewrites its own token in Cassandra every heartbeat interval (`Ledger.beat`). A peer is lost when
its token has not changed for `lost_after` seconds of this runner's own monotonic clock, while this runner
itself kept looking: an outage of Cassandra, or this runner paused (a GC, SIGSTOP, a slow disk), starts the
watch over instead of making every peer look lost at once when it ends. Pure logic; the runner's watch
feeds it.
"""

import time
import uuid
from collections.abc import Callable


class Liveness:
    def __init__(self, lost_after: float, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lost_after = lost_after
        # A gap between two looks longer than this means this runner was not running: it saw nothing meanwhile.
        self.max_gap = max(2 * interval, interval + 5.0)
        self._clock = clock
        self._seen: dict[str, tuple[uuid.UUID, float]] = {}  # peer -> (token, when this runner first saw it)
        self._last_look: float | None = None

    def blind(self) -> None:
        """This runner could not look (or write its own token): what it saw so far proves nothing."""
        self._seen.clear()
        self._last_look = None

    def look(self, tokens: dict[str, uuid.UUID]) -> list[str]:
        """Feed the peers' current tokens (a peer without one was never seen alive: never judged); returns
        the peers lost now."""
        now = self._clock()
        if self._last_look is None or now - self._last_look > self.max_gap:
            self._seen.clear()
        self._last_look = now
        lost = []
        for peer, token in tokens.items():
            seen = self._seen.get(peer)
            if seen is None or seen[0] != token:
                self._seen[peer] = (token, now)
            elif now - seen[1] >= self.lost_after:
                lost.append(peer)
        return lost
