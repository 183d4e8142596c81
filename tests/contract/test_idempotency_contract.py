"""The Idempotency-Key store's contract (services/api/ports.py IdempotencyKeyStore), run against the fake
(tests/fakes/api.py) and IdempotencyKeys on the real Cassandra node: the first claim of a key in a task wins,
later ones find what it stood for and how old it is, the publishing state goes with it, keys of other tasks
are other keys."""

import uuid

import pytest

from services.api.idempotency import PUBLISHED, REFUSED, IdempotencyKeys
from services.api.ports import IdempotencyKeyStore
from tests.fakes.api import FakeKeys


@pytest.fixture(params=["fake", "cassandra"])
def keys(request: pytest.FixtureRequest) -> IdempotencyKeyStore:
    if request.param == "fake":
        return FakeKeys()
    return IdempotencyKeys(request.getfixturevalue("cassandra"), request.getfixturevalue("backends").keyspace)


@pytest.fixture
def task() -> str:
    return f"keys-{uuid.uuid4().hex[:8]}"


def test_the_first_claim_wins_and_a_later_one_finds_what_it_stood_for(keys: IdempotencyKeyStore, task: str) -> None:
    assert keys.claim(task, "k", "print-a", b"order \x00 bytes") is None
    again = keys.claim(task, "k", "print-b", b"another order")
    assert again is not None
    assert (again.fingerprint, again.command, again.state) == ("print-a", b"order \x00 bytes", None)
    assert 0 <= again.age_s < 60  # claimed just now: a retry may still have to wait for the first request


def test_the_publishing_state_is_kept_with_the_key(keys: IdempotencyKeyStore, task: str) -> None:
    keys.claim(task, "k", "print", b"order")
    assert keys.state(task, "k") is None
    keys.set_state(task, "k", REFUSED)
    keys.set_state(task, "k", PUBLISHED)
    assert keys.state(task, "k") == PUBLISHED
    found = keys.claim(task, "k", "print", b"order")
    assert found is not None and found.state == PUBLISHED


def test_a_key_belongs_to_its_task_and_an_unknown_key_has_no_state(keys: IdempotencyKeyStore, task: str) -> None:
    assert keys.claim(task, "k", "print", b"order") is None
    assert keys.claim(f"{task}-other", "k", "print", b"order") is None
    assert keys.state(task, "never-used") is None
