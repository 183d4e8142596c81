"""How the recorder's writes are grouped into batches (pure logic; the batches themselves meet a real
Cassandra in tests/integration/test_recorder.py)."""

from typing import Any, cast

from cassandra.query import PreparedStatement

from shared.infra.writes import MAX_BATCH_BYTES, MAX_BATCH_STATEMENTS, chunks, value_size

STATEMENT = cast(PreparedStatement, object())


def write(*values: Any) -> tuple[PreparedStatement, tuple[Any, ...]]:
    return STATEMENT, values


def test_small_writes_share_batches_of_at_most_the_statement_limit() -> None:
    writes = [write("a", n) for n in range(MAX_BATCH_STATEMENTS * 2 + 1)]
    groups = chunks(writes)
    assert [len(g) for g in groups] == [MAX_BATCH_STATEMENTS, MAX_BATCH_STATEMENTS, 1]
    assert [w for g in groups for w in g] == writes  # nothing lost, order kept


def test_a_large_value_goes_alone_and_closes_the_batch_before_it() -> None:
    log = "x" * (MAX_BATCH_BYTES + 1)
    writes = [write("a"), write("b"), write(log), write("c")]
    assert [len(g) for g in chunks(writes)] == [2, 1, 1]


def test_sizes_count_strings_bytes_and_maps() -> None:
    assert value_size("abc") == 3
    assert value_size(b"ab") == 2
    assert value_size({"key": "value"}) == 8
    assert value_size(42) == 16
    assert chunks([]) == []
