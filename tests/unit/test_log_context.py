"""The log context (shared/process/logs.py): ids bound to a block show in every line written inside it; the
W3C traceparent is checked before it is trusted, and carried as a Kafka header from the context."""

import io
import json
import logging
from collections.abc import Callable

from shared.process.logs import (
    JsonFormatter,
    bound,
    context,
    new_traceparent,
    setup_logging,
    trace_headers,
    trace_ids,
    traceparent_of,
    valid_traceparent,
)
from shared.process.settings import Settings

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def lines(emit: Callable[[], None]) -> list[dict[str, object]]:
    """What `emit` logs, as the services' JSON lines (the root logger is put back after)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(Settings(log_format="json"))
        out = io.StringIO()
        root.handlers[0].stream = out  # type: ignore[attr-defined]
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        emit()
        return [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        root.handlers[:], root.level = handlers, level


def test_ids_bound_to_a_block_are_on_every_line_inside_it_and_gone_after() -> None:
    log = logging.getLogger("t")

    def emit() -> None:
        with bound(request_id="r1", job_id=None):
            log.info("outer")
            with bound(execution_id="e1", **trace_ids(GOOD)):
                log.info("inner", extra={"request_id": "explicit"})
            log.info("outer again")
        log.info("outside")

    outer, inner, again, outside = lines(emit)
    assert outer["request_id"] == "r1" and "job_id" not in outer and "execution_id" not in outer
    assert inner["request_id"] == "explicit" and inner["execution_id"] == "e1"
    assert inner["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and "traceparent" not in inner
    assert "execution_id" not in again and again["request_id"] == "r1"
    assert "request_id" not in outside and context() == {}


def test_only_a_well_formed_traceparent_is_trusted() -> None:
    assert valid_traceparent(GOOD) == GOOD and valid_traceparent(GOOD.encode()) == GOOD
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", GOOD + "x" * 200, b"\xff\x00"):
        assert valid_traceparent(bad) is None
    # A later version's form is read for its ids and passed on in the version this code speaks, nothing appended.
    later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever-comes-next"
    assert valid_traceparent(later) == GOOD
    fresh = new_traceparent()
    assert valid_traceparent(fresh) == fresh and fresh != new_traceparent()


def test_the_trace_travels_in_kafka_headers_from_the_context() -> None:
    assert trace_headers() == []
    with bound(**trace_ids(GOOD)):
        assert trace_headers() == [("traceparent", GOOD.encode())]
    assert traceparent_of([("other", b"x"), ("traceparent", GOOD.encode())]) == GOOD
    assert traceparent_of({"traceparent": GOOD}) == GOOD
    assert traceparent_of([("traceparent", b"not one")]) is None and traceparent_of(None) is None
