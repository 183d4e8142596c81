"""Tests of the deployment files. test_compose.py builds the images and runs the whole compose stack (a minute
warm, minutes cold, and the machine's two cores): it is collected only when the run selects its marker alone
(`pytest tests/deploy -m compose`, which `make test-compose` runs) or names the file, so `make test` (pytest
tests) leaves it out without collecting and skipping it."""

from pathlib import Path

import pytest

COMPOSE_MARKER = "compose"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{COMPOSE_MARKER}: runs deploy/compose.yaml for real (`make test-compose`)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name == "test_compose.py" and config.getoption("markexpr").strip() != COMPOSE_MARKER:
        return True
    return None
