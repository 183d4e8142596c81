from services.runner.offsets import OffsetTracker

P = ("topic", 0)


def test_in_order_completion_commits_each_offset() -> None:
    t = OffsetTracker()
    t.started(P, 5)
    t.started(P, 6)
    assert t.finished(P, 5) == 6
    assert t.finished(P, 6) == 7
    assert t.inflight() == 0


def test_out_of_order_completion_waits_for_the_oldest() -> None:
    t = OffsetTracker()
    for o in (10, 11, 12):
        t.started(P, o)
    assert t.finished(P, 12) is None
    assert t.finished(P, 11) is None
    assert t.inflight() == 3
    assert t.finished(P, 10) == 13
    assert t.inflight() == 0


def test_partitions_are_independent() -> None:
    t = OffsetTracker()
    t.started(P, 1)
    t.started(("topic", 1), 1)
    assert t.finished(("topic", 1), 1) == 2
    assert t.inflight() == 1


def test_revoked_partitions_are_forgotten() -> None:
    t = OffsetTracker()
    t.started(P, 1)
    t.forget([P])
    assert t.finished(P, 1) is None
    assert t.inflight() == 0
