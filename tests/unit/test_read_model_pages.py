"""Where a page lies in the read model (docs/read-model.md): the task listing's hour buckets, skipped by their
counts and read in order, and a job's numbered executions followed by its unnumbered (legacy) ones. Pure; the
same code against Cassandra: tests/integration/test_read_model_pages.py."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from services.api.paging import (
    BucketRead,
    ExecutionsPlan,
    executions_plan,
    plan_bucket_reads,
    read_buckets,
    skip_buckets,
)
from services.recorder.buckets import LEGACY_BUCKET, listing_bucket, stored_bucket
from services.recorder.numbers import next_number


def test_a_task_is_listed_in_the_hour_it_was_created_in() -> None:
    at = datetime(2026, 11, 30, 7, 59, 59, 999_999, tzinfo=UTC)
    assert listing_bucket(at) == int(datetime(2026, 11, 30, 7, tzinfo=UTC).timestamp()) // 3600
    assert listing_bucket(at + timedelta(microseconds=1)) == listing_bucket(at) + 1
    # Cassandra hands back naive UTC; another offset is the same instant.
    assert listing_bucket(at.replace(tzinfo=None)) == listing_bucket(at)
    assert listing_bucket(at.astimezone(timezone(timedelta(hours=5)))) == listing_bucket(at)


def test_no_creation_time_lands_in_the_legacy_bucket() -> None:
    assert listing_bucket(datetime(1970, 1, 1, 0, 30, tzinfo=UTC)) == 1
    assert listing_bucket(datetime(1900, 1, 1, tzinfo=UTC)) == 1
    assert stored_bucket(None) == LEGACY_BUCKET
    assert stored_bucket(492_000) == 492_000


def test_whole_buckets_before_the_offset_are_skipped_by_their_counts() -> None:
    buckets = iter([(30, 5), (20, 3), (10, 4)])
    assert skip_buckets(buckets, 7) == ([(20, 3)], 5)
    assert list(buckets) == [(10, 4)]  # the rest is left to read
    assert skip_buckets(iter([(30, 5), (20, 3)]), 5) == ([(20, 3)], 5)
    assert skip_buckets(iter([(30, 5), (20, 3)]), 4) == ([(30, 5)], 0)
    assert skip_buckets(iter([(30, 5), (20, 3)]), 8) == ([], 8)  # past every bucket


def test_the_buckets_a_page_needs_are_planned_together_each_for_the_whole_need() -> None:
    buckets = iter([(30, 5), (20, 1), (10, 1), (5, 9), (1, 9)])
    assert plan_bucket_reads(buckets, 3, 4) == [BucketRead(30, 3, 7), BucketRead(20, 0, 4), BucketRead(10, 0, 4)]
    assert list(buckets) == [(5, 9), (1, 9)]
    assert plan_bucket_reads(iter([]), 0, 4) == []


def test_the_job_page_is_a_range_of_numbers_then_the_legacy_rows() -> None:
    # 250 numbered executions, pages of 100: 250..151, 150..51, 50..1.
    assert executions_plan(250, 1, 1, 100) == ExecutionsPlan((151, 250), 0, 0)
    assert executions_plan(250, 1, 2, 100) == ExecutionsPlan((51, 150), 0, 0)
    assert executions_plan(250, 1, 3, 100) == ExecutionsPlan((1, 50), 0, 50)  # then any unnumbered ones
    assert executions_plan(250, 1, 4, 100) == ExecutionsPlan(None, 50, 100)
    # A job that has no numbered execution: the legacy read alone (skip the pages before).
    assert executions_plan(0, 0, 3, 100) == ExecutionsPlan(None, 200, 100)
    # Numbers 41..60 left (the oldest expired): 20 numbered, then the legacy ones.
    assert executions_plan(60, 41, 1, 15) == ExecutionsPlan((46, 60), 0, 0)
    assert executions_plan(60, 41, 2, 15) == ExecutionsPlan((41, 45), 0, 10)
    assert executions_plan(60, 41, 3, 15) == ExecutionsPlan(None, 10, 15)


def test_numbers_start_at_one_and_follow_the_newest() -> None:
    assert next_number(None) == 1
    assert next_number(41) == 42


@st.composite
def listings(draw: st.DrawFn) -> tuple[list[list[int]], list[int]]:
    """Buckets of rows (newest first) and the counts the bucket table holds for them: exact, or one low (a lost
    increment), or one high."""
    sizes = draw(st.lists(st.integers(0, 12), max_size=8))
    rows, counts, n = [], [], 1000
    for size in sizes:
        rows.append(list(range(n, n - size, -1)))
        n -= size
        counts.append(max(0, size + draw(st.sampled_from([0, 0, 0, -1]))))
    return rows, counts


@given(listings(), st.integers(1, 7))
def test_walking_the_buckets_page_by_page_reads_every_row_once_in_order(
    listing: tuple[list[list[int]], list[int]], size: int
) -> None:
    rows, counts = listing
    everything = [r for bucket in rows for r in bucket]

    def fetch(reads: list[BucketRead]) -> list[list[int]]:
        return [rows[r.bucket][: r.limit] for r in reads]

    buckets = list(enumerate(counts))
    walked: list[int] = []
    # A page after the previous one's last row: the rest of its bucket, then the older buckets (listing.after).
    while True:
        if not walked:
            page = read_buckets(iter(buckets), 0, size, fetch)
        else:
            last = walked[-1]
            at = next(i for i, bucket in enumerate(rows) if last in bucket)
            page = [r for r in rows[at] if r < last][:size]
            page += read_buckets(iter(buckets[at + 1 :]), 0, size - len(page), fetch)
        assert len(page) <= size
        walked += page
        if len(page) < size:
            break
    assert walked == everything


@given(listings(), st.integers(1, 7), st.integers(1, 6))
def test_a_page_by_number_is_that_slice_of_the_listing_when_the_counts_are_right(
    listing: tuple[list[list[int]], list[int]], size: int, page: int
) -> None:
    rows, _ = listing
    counts = [len(bucket) for bucket in rows]
    everything = [r for bucket in rows for r in bucket]

    def fetch(reads: list[BucketRead]) -> list[list[int]]:
        return [rows[r.bucket][: r.limit] for r in reads]

    buckets = iter(enumerate(counts))
    offset = (page - 1) * size
    holding, skipped = skip_buckets(buckets, offset)
    found = read_buckets(iter([*holding, *buckets]), offset - skipped, size, fetch) if holding else []
    assert found == everything[offset : offset + size]
