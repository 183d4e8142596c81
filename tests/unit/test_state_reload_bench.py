"""bench/state_reload.py writes what the scheduler writes: its records must stay valid job states (no Kafka)."""

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType

from services.scheduler.job_store import is_idle
from services.scheduler.state import JobState


def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "state_reload.py"
    spec = importlib.util.spec_from_file_location("state_reload_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_templates_are_the_states_the_scheduler_writes() -> None:
    t = bench().templates()
    cron = JobState.model_validate_json(t.cron_idle)
    assert [timer.kind for timer in cron.timers] == ["cron"] and not cron.running and cron.decided == 1
    fired = JobState.model_validate_json(t.cron_fired)
    assert fired.running and fired.timers
    assert JobState.model_validate_json(t.oneoff_running).running
    assert is_idle(JobState.model_validate_json(t.oneoff_done))  # the kind the archive holds


def test_records_are_keyed_by_job_id_as_the_loop_writes_them() -> None:
    b = bench()
    ids = b.new_ids(3)
    rows = list(b.records(b.templates().cron_idle, ids))
    for (key, value), job_key in zip(rows, ids, strict=True):
        state = JobState.model_validate_json(value)
        assert key == job_key == str(state.job_id).encode()  # services/scheduler/loop.py `_write`
        assert str(state.job_id) in state.task_id
        assert uuid.UUID(key.decode()) == state.job_id
    assert [value for _key, value in b.records(None, ids)] == [None, None, None]  # tombstones
