"""Waiting for a TCP port: lets services start before Kafka and Cassandra without noisy client errors."""

import socket
import time
from collections.abc import Sequence


def wait_for_port(addresses: Sequence[tuple[str, int]], timeout: float, what: str) -> None:
    """Block until something accepts connections on one of `addresses` (host, port): on a cluster one broker or
    node answering is enough to start; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    error: OSError | None = None
    while True:
        for host, port in addresses:
            try:
                with socket.create_connection((host, port), timeout=1):
                    return
            except OSError as exc:
                error = exc
        if time.monotonic() > deadline:
            listed = ", ".join(f"{h}:{p}" for h, p in addresses)
            raise RuntimeError(f"{what} at {listed} did not answer within {timeout:.0f}s") from error
        time.sleep(0.5)
