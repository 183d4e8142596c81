"""Waiting for a TCP port: lets services start before Kafka and Cassandra without noisy client errors."""

import socket
import time


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    """Block until something accepts connections on host:port; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} at {host}:{port} did not answer within {timeout:.0f}s") from exc
            time.sleep(0.5)
