"""The cluster test (`make test-cluster`: `pytest tests/cluster -m cluster`) starts three brokers, three Cassandra
nodes and eleven service processes and kills some of them: minutes of a two-core machine. `make test` leaves it
out (its suite is already near the 20 minutes it aims at); it runs only when asked for by its marker."""

from pathlib import Path

import pytest

CLUSTER_MARKER = "cluster"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{CLUSTER_MARKER}: runs the local cluster for real (`make test-cluster`)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name == "test_cluster.py" and config.getoption("markexpr").strip() != CLUSTER_MARKER:
        return True
    return None
