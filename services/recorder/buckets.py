"""Which partition of the task listing (`tasks_by_creation`) a task lives in: the hour it was created in.

One partition for every task (what versions before issue 19 wrote: bucket 0) grows without bound and takes
every listing write; 10 million tasks would be one partition of about a gigabyte on the same replicas. An hour
bounds a partition by the creation rate (a POST that creates a task tops out at ~207/s here: at most ~750,000
rows an hour; at a steady 10 million tasks a year, ~1,100) and moves the writes on every hour. Hash
sub-shards within an hour are left out: every page would then read each shard and merge, and one replica set
absorbs the listing's writes (one per order) at any rate the API reaches. The non-empty hours and their task
counts are kept in `task_buckets`, so a page walks the hours newest first and a deep page skips whole hours by
their counts (services/api/listing.py); docs/read-model.md has the whole picture.

Bucket 0 is the legacy partition: tasks listed by older versions stay there, and so does every later write
about them (their `task_index` row has no bucket); it is read after the hours. Hours count from the UNIX epoch
and start at 1, so no new task ever lands in bucket 0.
"""

from datetime import UTC, datetime

LEGACY_BUCKET = 0
FIRST_BUCKET = 1  # a task created before 1970-01-01T01:00Z (a clock that far off) shares the first hour
BUCKET_SECONDS = 3600


def listing_bucket(created_at: datetime) -> int:
    """The hour bucket of a task created at `created_at` (a naive time is UTC, as Cassandra hands it back)."""
    aware = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    return max(FIRST_BUCKET, int(aware.timestamp() // BUCKET_SECONDS))


def stored_bucket(bucket: int | None) -> int:
    """The bucket a `task_index` row names: none for a task listed before buckets existed (the legacy one)."""
    return LEGACY_BUCKET if bucket is None else bucket
