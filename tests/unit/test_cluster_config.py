"""The local cluster's configuration (deploy/cluster, deploy/scripts/cluster.sh) and the settings it relies on:
replication and consistency. The cluster itself runs in tests/cluster (`make test-cluster`)."""

import re
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.policies import ConstantSpeculativeExecutionPolicy
from cassandra.query import PreparedStatement
from pydantic import ValidationError

from shared.contract.topics import Topics
from shared.infra.cassandra import _profile, retried_reads
from shared.process.settings import RunnerSettings, Settings
from tests.cluster.stack import cluster_env

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "cluster"


def test_the_cluster_settings_replicate_everything_three_times(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cluster_env().items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.kafka_bootstrap.count(",") == 2
    assert len(settings.cassandra_contact_points) == 3
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    assert settings.cassandra_replication_factor == 3
    assert Topics.from_settings(settings).config(Topics.from_settings(settings).jobs)["min.insync.replicas"] == "2"
    profile = _profile(settings)
    assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert profile.serial_consistency_level == ConsistencyLevel.LOCAL_SERIAL


def test_the_cluster_runners_are_the_hosts_of_its_farm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cluster_env().items():
        monkeypatch.setenv(name, value)
    conf = (CLUSTER / "supervisord.conf").read_text()
    runner = conf[conf.index("[program:runner]") :].split("\n\n")[0]
    assert "numprocs=3" in runner and "FASTLANE_HOST_NAME=node-%(process_num)d" in runner
    for n in (1, 2, 3):
        monkeypatch.setenv("FASTLANE_HOST_NAME", f"node-{n}")
        settings = RunnerSettings()
        assert settings.my_farm.name == "default"
        assert settings.capacity == 4  # a third of the farm's maxRunning each


def test_min_insync_replicas_cannot_exceed_the_replicas() -> None:
    with pytest.raises(ValidationError, match="cannot exceed"):
        Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2)


def test_a_single_node_keeps_its_defaults() -> None:
    settings = Settings()
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (1, 1)
    assert _profile(settings).consistency_level == ConsistencyLevel.LOCAL_QUORUM  # one replica: the same as ONE


@pytest.mark.parametrize(
    ("template", "script"),
    [("kafka.properties.in", "kafka.sh"), ("cassandra.yaml.in", "cassandra.sh")],
)
def test_every_placeholder_of_a_cluster_template_is_filled_by_its_script(template: str, script: str) -> None:
    placeholders = set(re.findall(r"@([A-Z_]+)@", (CLUSTER / template).read_text()))
    filled = set(re.findall(r"s#@([A-Z_]+)@#", (ROOT / "deploy" / "scripts" / script).read_text()))
    assert placeholders, template
    assert placeholders <= filled


def prepared(cql: str) -> PreparedStatement:
    return PreparedStatement(None, b"id", None, cql, "ks", 5, None, None)


def test_only_reads_are_sent_again_to_another_coordinator() -> None:
    class Holder:
        def __init__(self) -> None:
            self.read = prepared(" select a from t where k = ?")
            self.write = prepared("INSERT INTO t (k) VALUES (?) IF NOT EXISTS")
            self.count = prepared("UPDATE c SET n = n + 1 WHERE k = ?")

    holder = Holder()
    retried_reads(holder)
    assert holder.read.is_idempotent
    assert not holder.write.is_idempotent and not holder.count.is_idempotent
    policy = _profile(Settings()).speculative_execution_policy
    assert isinstance(policy, ConstantSpeculativeExecutionPolicy)
