import pytest
from pydantic import ValidationError

from shared.contract.topics import Topics
from shared.domain.farms import Farm, due_topic, farm_for
from shared.process.settings import RunnerSettings, Settings

FARMS = [
    {"match": "producta.+", "hosts": ["h1:2375", "h2:2375"], "maxRunning": 5},
    {"match": "", "hosts": ["h3:2375"], "maxRunning": 2},
]


def test_the_first_farm_whose_regex_matches_the_task_id_takes_it() -> None:
    farms = Settings(farms=FARMS).farms
    assert [f.name for f in farms] == ["default", "farm-1"]
    taken = farm_for("producta-billing", farms)
    assert taken is not None and taken.name == "default"
    other = farm_for("productb", farms)
    assert other is not None and other.name == "farm-1"
    assert farm_for("producta", farms) is not None and farm_for("producta", farms) == farms[1]  # ".+" needs more
    assert farm_for("x", [Farm(match="only-", hosts=["h"], maxRunning=1)]) is None


def test_max_running_is_split_over_the_hosts_and_never_exceeded() -> None:
    farm = Farm(match="", hosts=["a", "b", "c"], maxRunning=7)
    assert [farm.share(h) for h in ("a", "b", "c")] == [3, 2, 2]
    assert sum(farm.share(h) for h in farm.hosts) == 7
    assert RunnerSettings(farms=FARMS, host_name="h2:2375").capacity == 2
    assert RunnerSettings(farms=FARMS, host_name="h2:2375", max_running=9).capacity == 9
    assert RunnerSettings(farms=FARMS, host_name="h3:2375").my_farm.name == "farm-1"


def test_each_farm_has_its_due_topic_and_the_default_keeps_the_original_name() -> None:
    topics = Topics.from_settings(Settings(topic_prefix="p.", farms=FARMS))
    assert topics.farm_due == {"default": "p.executions.due", "farm-1": "p.executions.due.farm-1"}
    assert topics.due_for("producta-x") == "p.executions.due"
    assert topics.due_for("zzz") == "p.executions.due.farm-1"
    assert set(topics.all_due) <= set(topics.all())
    assert due_topic("p.", "x") == "p.executions.due.x"


@pytest.mark.parametrize(
    ("farms", "message"),
    [
        ([{"match": "(", "hosts": ["h"], "maxRunning": 1}], "not a valid regular expression"),
        ([{"match": "", "hosts": ["a", "b"], "maxRunning": 1}], "at least its number of hosts"),
        ([{"match": "", "hosts": [], "maxRunning": 1}], "hosts"),
        ([{"name": "x", "hosts": ["a"], "maxRunning": 1}, {"name": "x", "hosts": ["b"], "maxRunning": 1}], "unique"),
        ([], "at least one farm"),
    ],
)
def test_bad_farm_configurations_are_refused_with_a_reason(farms: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(farms=farms)
