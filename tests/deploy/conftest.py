"""Tests of the deployment files. test_compose.py builds the images and runs the whole compose stack (minutes,
and the machine's two cores): it is collected only when FASTLANE_COMPOSE_TEST=1, which `make test-compose` sets,
so `make test` (pytest tests) leaves it out without skipping anything."""

import os

import pytest

COMPOSE_TEST_ENABLED = os.environ.get("FASTLANE_COMPOSE_TEST") == "1"

collect_ignore = [] if COMPOSE_TEST_ENABLED else ["test_compose.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compose: runs deploy/compose.yaml for real (`make test-compose`)")
