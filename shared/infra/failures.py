"""Telling a backing service's failure from a message's own fault.

A consumer retries a failing handler. When Kafka, Cassandra or a Docker engine is unavailable, waiting helps:
those failures are retried with growing pauses for as long as they last, and nothing is parked. Any other
exception comes from the message itself (its content, or a bug it triggers): retrying it cannot help, so after
a few attempts the caller gives up on that message (parks it on the dead-letter topic, ends its execution
with the reason) and moves on to the next one.
"""

import httpx
import requests
from cassandra import OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from confluent_kafka import KafkaError, KafkaException

# Attempts a message gets before it is given up on (its failures are not a backing service's).
POISON_ATTEMPTS = 4

# Kafka errors about the message being produced, not about the broker: waiting does not help.
_MESSAGE_FAULTS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # the broker's answer, and librdkafka's own check before sending
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError._INVALID_ARG,
    }
)

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    RequestExecutionException,  # Cassandra: unavailable replicas, timeouts, overloaded, bootstrapping
    OperationTimedOut,
    NoHostAvailable,
    ConnectionException,
    OSError,  # sockets: refused, reset, timed out
    requests.exceptions.ConnectionError,  # a Docker engine out of reach
    requests.exceptions.Timeout,
    httpx.TransportError,  # a webhook receiver out of reach
)


class GaveUp(Exception):
    """A handler failed on one message POISON_ATTEMPTS times for reasons of the message's own."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(reason(cause))
        self.cause = cause


def reason(exc: BaseException) -> str:
    """One line for a person: what failed and why (bounded, for headers and `error` fields)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def is_transient(exc: BaseException) -> bool:
    """True when a backing service (Kafka, Cassandra, a Docker engine, a network) failed, not the message."""
    if getattr(exc, "transient", False):  # e.g. the runner's EngineUnavailable
        return True
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        return not (isinstance(error, KafkaError) and error.code() in _MESSAGE_FAULTS)
    return isinstance(exc, _UNAVAILABLE)
