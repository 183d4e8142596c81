"""The API's edges, free of I/O: each error's HTTP status (mapped in services/api/errors.py only), the paging
cursor a nextUrl carries, and the page envelope."""

from datetime import UTC, datetime

import pytest

from services.api.errors import (
    ApiError,
    BadRequest,
    KeyReused,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    Unavailable,
    http_status,
)
from services.api.paging import page_of_tasks, parse_cursor
from shared.domain.links import Links


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest, 400),
        (NotFound, 404),
        (KeyReused, 409),
        (PayloadTooLarge, 413),
        (Unavailable, 503),
        (OutcomeUnknown, 504),
        (ApiError, 500),
    ],
)
def test_each_error_answers_its_documented_status(error: type[ApiError], status: int) -> None:
    assert http_status(error("why")) == status


def test_a_subclass_answers_as_its_parent() -> None:
    class UnknownTask(NotFound):
        """A narrower NotFound."""

    assert http_status(UnknownTask("no such task")) == 404


def test_a_huge_message_is_not_echoed_whole() -> None:
    assert len(BadRequest("x" * 10_000).message) == 2000


def test_a_cursor_is_the_last_tasks_creation_millis_and_id() -> None:
    assert parse_cursor(None) is None
    assert parse_cursor("1777636800000:billing:v2") == (datetime(2026, 5, 1, 12, 0, tzinfo=UTC), "billing:v2")


@pytest.mark.parametrize("after", ["", "12", ":task", "1²:task", "-1:task", "1.5:task", "999999999999999:task"])
def test_a_cursor_not_written_by_a_next_url_is_refused(after: str) -> None:
    with pytest.raises(BadRequest, match="nextUrl"):
        parse_cursor(after)


def test_the_page_envelope_links_the_next_page_after_its_last_task() -> None:
    items = [{"cursor": f"{n}:t{n}", "taskId": f"t{n}"} for n in (3, 2)]
    page = page_of_tasks(Links("http://api/"), "/search", {"query": "t"}, items, 5, 1, 2)
    assert [i["url"] for i in page["items"]] == ["http://api/tasks/t3", "http://api/tasks/t2"]
    assert all("cursor" not in i for i in page["items"])
    assert (page["pages"], page["hasNext"], page["hasPrev"], page["prevUrl"]) == (3, True, False, None)
    assert page["nextUrl"] == "http://api/search?query=t&page=2&after=2%3At2"
    last = page_of_tasks(Links("http://api"), "/tasks", {}, [], 5, 3, 2)
    assert (last["nextUrl"], last["prevUrl"]) == (None, "http://api/tasks?page=2")
