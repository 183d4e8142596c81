"""docs/events.md is the published contract: every JSON example in it must decode to an event."""

import json
import re
from pathlib import Path

from shared.contract.events import decode

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_every_example_in_the_event_docs_is_a_valid_event() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    types = set()
    for block in blocks:
        event = decode(block.encode())
        assert json.loads(block)["type"] == event.type
        types.add(event.type)
    assert types == {
        "JobRequested",
        "JobUpdated",
        "JobStopRequested",
        "JobRetryRequested",
        "ExecutionStopRequested",
        "ExecutionDue",
        "StopExecution",
        "ExecutionPulling",
        "ExecutionStarted",
        "ExecutionFinished",
        "ExecutionOutput",
        "RunnerHeartbeat",
        "HostBlacklisted",
    }
