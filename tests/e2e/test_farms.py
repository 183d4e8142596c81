"""Runners and Docker farms end to end: two real Docker engines on this machine stand for two hosts, in two
farms served by three runner processes:

    farm `alpha` (task ids starting `alpha-`): hosts e1 (the machine's engine) and e2 (a second dockerd), maxRunning 4
    farm `beta`  (every other task):           host  b1 (the machine's engine again, as a host of its own), maxRunning 2

with a local docker-registry on 127.0.0.1:5000 for pulls. The stack has its own topics and keyspace."""

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
import requests
from cassandra.cluster import Session
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from services.devstack import DevStack
from shared.contract.events import ExecutionDue, ExecutionFinished, ExecutionPulling, encode, new_execution_id
from shared.contract.topics import Topics
from shared.process.settings import Settings
from tests.conftest import ROOT, TEST_IMAGE
from tests.e2e.lifecycle import FINAL, post_job, wait_executions, wait_status
from tests.helpers import eventually, read_events

ENGINE2 = ROOT / ".local" / "run" / "docker2.sock"
# The e2 runner reaches the second engine as a remote host is reached: over TCP, TLS with a client certificate
# (deploy/scripts/second-engine.sh makes the certificates). The tests inspect that engine through its socket.
ENGINE2_TLS_PORT = 23760
ENGINE2_TLS_URL = f"tcp://127.0.0.1:{ENGINE2_TLS_PORT}"
ENGINE2_TLS = ROOT / ".local" / "run" / "docker2-tls"
LABEL = "fastlane.execution-id"
# Made by `deploy/scripts/registry.sh auth` for the registry on 127.0.0.1:5001.
PRIVATE_REGISTRY_CREDENTIALS = ROOT / ".local" / "run" / "registry-auth" / "credentials.json"


def script(*args: str) -> None:
    subprocess.run([str(ROOT / "deploy" / "scripts" / args[0]), *args[1:]], check=True, timeout=300)


class Farms:
    """The farm stack: its DevStack, its settings, and clients of both engines."""

    def __init__(self, stack: DevStack, settings: Settings, run: str) -> None:
        self.stack = stack
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.run = run
        self.engines = {"e1": docker.from_env(), "e2": docker.DockerClient(base_url=f"unix://{ENGINE2}")}
        self.client = httpx.Client(base_url=stack.url, timeout=10)
        self.registry_auth: dict[str, str] = json.loads(PRIVATE_REGISTRY_CREDENTIALS.read_text())

    def runner(self, host: str) -> None:
        engine: dict[str, str] = {"FASTLANE_DOCKER_HOST": ""}
        if host == "e2":
            engine = {
                "FASTLANE_DOCKER_HOST": ENGINE2_TLS_URL,
                "FASTLANE_DOCKER_TLS_CA": str(ENGINE2_TLS / "ca.pem"),
                "FASTLANE_DOCKER_TLS_CERT": str(ENGINE2_TLS / "client.pem"),
                "FASTLANE_DOCKER_TLS_KEY": str(ENGINE2_TLS / "client-key.pem"),
            }
        if host == "b1":
            engine["FASTLANE_REGISTRY_AUTH"] = json.dumps({"127.0.0.1:5001": self.registry_auth})
        farm = "beta" if host == "b1" else "alpha"
        self.stack.start("runner", name=host, FASTLANE_HOST_NAME=host, FASTLANE_FARM=farm, **engine)

    def task(self, farm: str) -> str:
        return f"{'alpha' if farm == 'alpha' else 'other'}-{self.run}-{uuid.uuid4().hex[:6]}"

    def running(self, engine: str, task_prefix: str) -> int:
        """Running fastlane containers of this test run's tasks with this prefix on one engine."""
        found = self.engines[engine].api.containers(filters={"label": LABEL, "status": "running"})
        return sum(1 for c in found if c["Labels"].get("fastlane.task-id", "").startswith(task_prefix))

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {h["host"]: h for h in self.client.get("/status").json()["hosts"]}

    def host_of(self, execution_url: str) -> str:
        return str(self.client.get(execution_url).json()["execution"]["metadata"]["dockerHost"])


@pytest.fixture(scope="module")
def farms(backends: Settings, tmp_path_factory: pytest.TempPathFactory, cassandra: Session) -> Iterator[Farms]:
    script("second-engine.sh", "start", TEST_IMAGE)
    script("registry.sh")
    script("registry.sh", "auth")
    run = uuid.uuid4().hex[:6]
    farm_config = [
        {"name": "alpha", "match": "alpha-", "hosts": ["e1", "e2"], "maxRunning": 4},
        {"name": "beta", "match": "", "hosts": ["b1"], "maxRunning": 2},
    ]
    env = {
        "FASTLANE_FARMS": json.dumps(farm_config),
        "FASTLANE_HEARTBEAT_INTERVAL_S": "1",
        "FASTLANE_BREAKER_THRESHOLD": "2",
        "FASTLANE_BREAKER_OPEN_S": "3",
        "FASTLANE_HOST_LOST_AFTER_S": "8",
        "FASTLANE_HOST_STALE_AFTER_S": "5",
        "FASTLANE_STOP_GRACE_S": "2",
        "FASTLANE_RETRY_BACKOFF_MIN_MS": "200",
    }
    prefix, keyspace = f"{backends.topic_prefix}farms.", f"{backends.keyspace}_farms"
    settings = Settings(topic_prefix=prefix, keyspace=keyspace, farms=farm_config)
    stack = DevStack(
        prefix,
        keyspace,
        tmp_path_factory.mktemp("farms"),
        max_running=None,
        services=("recorder", "scheduler", "api"),
        **env,
    )
    with stack:
        f = Farms(stack, settings, run)
        for host in ("e1", "e2", "b1"):
            f.runner(host)
        eventually(lambda: {"e1", "e2", "b1"} <= {h for h, v in f.hosts().items() if v["available"]}, timeout=90)
        yield f
        f.client.close()
        killed = stack.stop()
        for name in list(stack.procs):
            print(f"--- {name} ---\n{stack.log_tail(name, 3000)}")
        assert not killed, f"did not stop within 30 s of SIGTERM: {killed}"
    script("second-engine.sh", "stop")  # no engine left behind for the next checkout's tests
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics(Topics.from_settings(settings).all()).values():
        future.exception()
    cassandra.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


def test_status_is_built_from_heartbeats(farms: Farms) -> None:
    hosts = farms.hosts()
    assert {h: (v["farm"], v["capacity"], v["circuit"]) for h, v in hosts.items() if h in ("e1", "e2", "b1")} == {
        "e1": ("alpha", 2, "closed"),
        "e2": ("alpha", 2, "closed"),
        "b1": ("beta", 2, "closed"),
    }
    assert all(hosts[h]["version"] and hosts[h]["lastSeenAt"] for h in ("e1", "e2", "b1"))


def test_the_second_engine_is_reached_over_tls_with_a_client_certificate(farms: Farms) -> None:
    """e2's runner runs jobs (below) through this endpoint; without the client certificate it answers nothing."""
    bare = docker.tls.TLSConfig(ca_cert=str(ENGINE2_TLS / "ca.pem"), verify=True)  # trusts the engine, no client cert
    client = docker.DockerClient(base_url=ENGINE2_TLS_URL, tls=bare, version="1.41")
    client.api.trust_env = False  # the CA above, not REQUESTS_CA_BUNDLE (see services/runner/docker_runtime.py)
    with pytest.raises(requests.exceptions.SSLError, match=r"ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED)"):
        client.ping()
    e2 = farms.hosts()["e2"]
    assert (e2["available"], e2["error"]) == (True, None)  # its runner's engine probes pass
    for _ in range(20):  # until one lands on e2 (the farm shares its jobs between e1 and e2)
        job = post_job(farms.client, "echo over tls", task=farms.task("alpha"))
        execution = wait_status(farms.client, job["executionUrl"], {"done"})
        if farms.host_of(job["executionUrl"]) == "e2":
            assert execution["log"] == "over tls\n"
            break
    else:
        pytest.fail("no job ran on e2")


def test_jobs_run_only_on_the_hosts_of_the_farm_their_task_matches(farms: Farms) -> None:
    alpha = [post_job(farms.client, "true", task=farms.task("alpha")) for _ in range(6)]
    beta = [post_job(farms.client, "true", task=farms.task("beta")) for _ in range(3)]
    for job in alpha + beta:
        wait_status(farms.client, job["executionUrl"], {"done"})
    assert {farms.host_of(j["executionUrl"]) for j in alpha} <= {"e1", "e2"}
    assert {farms.host_of(j["executionUrl"]) for j in beta} == {"b1"}


def test_max_running_is_never_exceeded(farms: Farms) -> None:
    prefix = f"alpha-{farms.run}-busy"
    jobs = [post_job(farms.client, "sleep 2", task=f"{prefix}-{n}") for n in range(20)]
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((farms.running("e1", prefix), farms.running("e2", prefix)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for job in jobs:
            wait_status(farms.client, job["executionUrl"], {"done"}, timeout=120)
    finally:
        done.set()
        sampler.join(5)
    assert max(e1 for e1, _ in samples) == 2, "e1 should run its share (2) at its busiest, never more"
    assert max(e2 for _, e2 in samples) == 2
    assert max(e1 + e2 for e1, e2 in samples) <= 4


def push(image: str, auth: dict[str, str] | None = None) -> None:
    engine = docker.from_env()
    engine.images.get(TEST_IMAGE).tag(image)
    for line in engine.images.push(image, stream=True, decode=True, auth_config=auth):
        assert "error" not in line, line
    engine.images.remove(image)


def test_images_are_pulled_from_a_registry_with_and_without_a_tag(farms: Farms) -> None:
    repo = f"127.0.0.1:5000/fastlane/pull-{farms.run}"
    push(f"{repo}:v1")
    push(f"{repo}:latest")
    tagged = post_job(farms.client, "echo tagged", task=farms.task("beta"), image=f"{repo}:v1")
    untagged = post_job(farms.client, "echo latest", task=farms.task("beta"), image=repo)
    for job, out in ((tagged, "tagged\n"), (untagged, "latest\n")):
        execution = wait_status(farms.client, job["executionUrl"], FINAL)
        assert (execution["status"], execution["log"]) == ("done", out), execution
    events = read_events(farms.settings.kafka_bootstrap, farms.topics.executions, 0, timeout=3)
    pulling = {e.execution_id for e in events if isinstance(e, ExecutionPulling)}
    assert {uuid.UUID(tagged["executionId"]), uuid.UUID(untagged["executionId"])} <= pulling


def test_private_images_are_pulled_with_the_credentials_configured_for_their_registry(farms: Farms) -> None:
    """b1 has credentials for the registry on 127.0.0.1:5001 (FASTLANE_REGISTRY_AUTH); e1 and e2 have none."""
    repo = f"127.0.0.1:5001/fastlane/private-{farms.run}"
    push(f"{repo}:v1", auth=farms.registry_auth)
    # First the hosts without credentials, while no engine has the image (b1 shares e1's engine).
    refused = post_job(farms.client, "true", task=farms.task("alpha"), image=f"{repo}:v1")
    execution = wait_status(farms.client, refused["executionUrl"], {"failed"}, timeout=90)
    assert "no basic auth credentials" in execution["error"], execution["error"]
    allowed = post_job(farms.client, "echo private", task=farms.task("beta"), image=f"{repo}:v1")
    execution = wait_status(farms.client, allowed["executionUrl"], {"done"}, timeout=90)
    assert execution["log"] == "private\n"
    docker.from_env().images.remove(f"{repo}:v1")


def test_a_missing_image_fails_with_the_registrys_message(farms: Farms) -> None:
    job = post_job(farms.client, "true", task=farms.task("beta"), image=f"127.0.0.1:5000/fastlane/none-{farms.run}:1")
    execution = wait_status(farms.client, job["executionUrl"], FINAL)
    assert execution["status"] == "failed" and execution["exitCode"] is None
    assert "manifest unknown" in execution["error"] or "not found" in execution["error"], execution["error"]


def test_resources_and_extra_hosts_reach_the_engine(farms: Farms) -> None:
    job = post_job(
        farms.client,
        "sh -c 'cat /etc/hosts; sleep 3'",
        task=farms.task("beta"),
        resources={"cpus": 0.5, "memoryMB": 64},
        additionalDNSEntries={"db.internal": "10.1.2.3"},
    )
    wait_status(farms.client, job["executionUrl"], {"running"})
    container = farms.engines["e1"].containers.get(f"fastlane-{job['executionId']}")
    host_config = container.attrs["HostConfig"]
    assert (host_config["NanoCpus"], host_config["Memory"]) == (500_000_000, 64 * 1024 * 1024)
    assert host_config["Privileged"] is False and not host_config.get("Binds")
    assert container.labels["fastlane.task-id"] == job["taskId"] and container.labels[LABEL] == job["executionId"]
    execution = wait_status(farms.client, job["executionUrl"], FINAL)
    assert "10.1.2.3\tdb.internal" in execution["log"]


def test_a_duplicated_execution_due_starts_one_container(farms: Farms) -> None:
    due = ExecutionDue(
        task_id=farms.task("alpha"),
        job_id=uuid.uuid4(),
        execution_id=new_execution_id(),
        image=TEST_IMAGE,
        command="sleep 3",
    )
    producer = Producer({"bootstrap.servers": farms.settings.kafka_bootstrap})
    topic = farms.topics.farm_due["alpha"]
    for partition in (0, farms.settings.topic_partitions - 1):  # different runners of the farm hold these
        producer.produce(topic, key=due.key, value=encode(due), partition=partition)
    producer.flush(10)
    name = f"fastlane-{due.execution_id}"

    def containers() -> int:
        return sum(len(e.api.containers(all=True, filters={"name": name})) for e in farms.engines.values())

    eventually(containers, timeout=30, what="the container")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert containers() <= 1
        time.sleep(0.1)
    events = read_events(farms.settings.kafka_bootstrap, farms.topics.executions, 0, timeout=6)
    finished = [e for e in events if isinstance(e, ExecutionFinished) and e.execution_id == due.execution_id]
    assert len(finished) == 1 and finished[0].status == "done"


def test_a_runner_killed_mid_execution_takes_its_containers_up_again(farms: Farms) -> None:
    running = post_job(farms.client, "sh -c 'echo start; sleep 8; echo end'", task=farms.task("beta"))
    ending = post_job(farms.client, "sh -c 'echo bye; exit 3'", task=farms.task("beta"), startIn="2s")
    wait_status(farms.client, running["executionUrl"], {"running"})
    farms.stack.kill("b1")
    time.sleep(4)  # the delayed job is due meanwhile: it waits for a runner of beta
    farms.runner("b1")
    execution = wait_status(farms.client, running["executionUrl"], FINAL, timeout=60)
    assert (execution["status"], execution["exitCode"], execution["log"]) == ("done", 0, "start\nend\n")
    [late] = wait_executions(farms.client, ending["jobUrl"], 1)
    late = farms.client.get(late["url"]).json()["execution"]
    assert (late["status"], late["exitCode"], late["log"]) == ("failed", 3, "bye\n")
    name = f"fastlane-{running['executionId']}"
    assert farms.engines["e1"].api.containers(all=True, filters={"name": name}) == []  # removed once recorded
    events = read_events(farms.settings.kafka_bootstrap, farms.topics.executions, 0, timeout=4)
    finished = [e for e in events if isinstance(e, ExecutionFinished) and str(e.execution_id) == running["executionId"]]
    assert len(finished) == 1


def test_a_stop_sent_while_the_runner_is_down_stops_the_container_when_it_is_back(farms: Farms) -> None:
    job = post_job(farms.client, "sleep 120", task=farms.task("beta"))
    wait_status(farms.client, job["executionUrl"], {"running"})
    farms.stack.kill("b1")
    response = farms.client.post(f"{job['executionUrl']}/stop")
    assert response.status_code == 200, response.text
    time.sleep(2)  # the StopExecution is broadcast while no runner of beta listens
    farms.runner("b1")
    execution = wait_status(farms.client, job["executionUrl"], FINAL, timeout=60)
    assert (execution["status"], execution["error"]) == ("stopped", "stopped on request"), execution


def test_a_runner_that_ended_while_its_container_ran_reports_it_when_back(farms: Farms) -> None:
    job = post_job(farms.client, "sh -c 'echo bye; sleep 1; exit 4'", task=farms.task("beta"))
    wait_status(farms.client, job["executionUrl"], {"running"})
    farms.stack.kill("b1")
    time.sleep(3)  # the container ends while no runner watches
    farms.runner("b1")
    execution = wait_status(farms.client, job["executionUrl"], FINAL, timeout=60)
    assert (execution["status"], execution["exitCode"], execution["log"]) == ("failed", 4, "bye\n")


def test_a_blacklisted_host_takes_no_new_work_until_put_back(farms: Farms) -> None:
    assert farms.client.post("/docker-executor/blacklist", json={"host": "e2"}).json() == {
        "host": "e2",
        "blacklisted": True,
    }
    assert farms.hosts()["e2"]["blacklisted"] is True
    time.sleep(3)  # the runner sees it at its next beat and leaves the farm's group
    jobs = [post_job(farms.client, "true", task=farms.task("alpha")) for _ in range(8)]
    for job in jobs:
        wait_status(farms.client, job["executionUrl"], {"done"}, timeout=60)
    assert {farms.host_of(j["executionUrl"]) for j in jobs} == {"e1"}
    assert farms.client.request("DELETE", "/docker-executor/blacklist", json={"host": "e2"}).status_code == 200
    assert farms.hosts()["e2"]["blacklisted"] is False

    def lands_on_e2() -> bool:
        job = post_job(farms.client, "true", task=farms.task("alpha"))
        wait_status(farms.client, job["executionUrl"], {"done"}, timeout=60)
        return farms.host_of(job["executionUrl"]) == "e2"

    eventually(lands_on_e2, timeout=90, interval=0.5, what="a job on e2 again")
    assert farms.client.post("/docker-executor/blacklist", json={"host": " "}).status_code == 400


def running_on_e2_alone(farms: Farms, command: str) -> dict[str, Any]:
    """A job with one retry, running on e2: e1 is blacklisted first (the caller puts it back)."""
    eventually(lambda: farms.hosts()["e2"]["available"], timeout=60, what="e2 available")
    farms.client.post("/docker-executor/blacklist", json={"host": "e1"})
    time.sleep(5)  # e1 leaves the farm's group at its next beat; the group rebalances to e2
    job = post_job(farms.client, command, task=farms.task("alpha"), retries=1)
    first = wait_status(farms.client, job["executionUrl"], {"running"}, timeout=60)
    assert first["metadata"]["dockerHost"] == "e2"
    return job


def wait_container_removed(farms: Farms, engine: str, execution_id: str) -> None:
    name = f"fastlane-{execution_id}"
    eventually(
        lambda: farms.engines[engine].api.containers(all=True, filters={"name": name}) == [],
        timeout=60,
        what=f"the container of {execution_id} removed from {engine}",
    )


def test_executions_of_a_lost_host_fail_and_are_retried_elsewhere(farms: Farms) -> None:
    # Only e2 takes alpha work while e1 is blacklisted; then e2's runner dies for good.
    try:
        job = running_on_e2_alone(farms, "sleep 30")
        farms.stack.kill("e2")
        farms.client.request("DELETE", "/docker-executor/blacklist", json={"host": "e1"})
        lost = wait_status(farms.client, job["executionUrl"], FINAL, timeout=60)
        assert lost["status"] == "failed" and "host e2 lost" in lost["error"], lost
        retried = wait_executions(farms.client, job["jobUrl"], 2, timeout=90, final=False)
        assert retried[0]["executionId"] != job["executionId"]
        assert wait_status(farms.client, retried[0]["url"], {"running"}, timeout=60)["metadata"]["dockerHost"] == "e1"
        farms.client.post(f"{job['jobUrl']}/stop")
    finally:
        farms.client.request("DELETE", "/docker-executor/blacklist", json={"host": "e1"})
        if "e2" not in farms.stack.procs:
            farms.runner("e2")
    # Back, e2's runner drops the execution taken from it and removes its container.
    wait_container_removed(farms, "e2", job["executionId"])


@contextlib.contextmanager
def unreachable(port: int) -> Iterator[None]:
    """Connections to 127.0.0.1:`port` are refused (TCP reset) until the block ends: a host gone from the network."""
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]
    subprocess.run(["iptables", "-I", *rule], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True, timeout=30)


def test_executions_fail_when_their_engine_stops_answering_and_are_retried_elsewhere(farms: Farms) -> None:
    """e2's runner stays up but its engine is cut off while a container runs there."""
    try:
        job = running_on_e2_alone(farms, "sleep 60")
        with unreachable(ENGINE2_TLS_PORT):
            farms.client.request("DELETE", "/docker-executor/blacklist", json={"host": "e1"})
            lost = wait_status(farms.client, job["executionUrl"], FINAL, timeout=60)
            assert lost["status"] == "failed", lost
            assert "the Docker engine of host e2 has not answered for 8s" in lost["error"], lost
            retried = wait_executions(farms.client, job["jobUrl"], 2, timeout=90, final=False)
            assert retried[0]["executionId"] != job["executionId"]
            again = wait_status(farms.client, retried[0]["url"], {"running"}, timeout=60)
            assert again["metadata"]["dockerHost"] == "e1"  # e2's circuit is open meanwhile
            farms.client.post(f"{job['jobUrl']}/stop")
    finally:
        farms.client.request("DELETE", "/docker-executor/blacklist", json={"host": "e1"})
    # Reachable again: e2's runner removes the container of the execution it failed.
    wait_container_removed(farms, "e2", job["executionId"])


def test_the_circuit_opens_when_an_engine_stops_and_closes_when_it_is_back(farms: Farms) -> None:
    script("second-engine.sh", "stop")
    try:
        eventually(lambda: farms.hosts()["e2"]["circuit"] == "open", timeout=30, what="e2's circuit to open")
        assert farms.hosts()["e2"]["available"] is False
        jobs = [post_job(farms.client, "true", task=farms.task("alpha")) for _ in range(6)]
        for job in jobs:
            wait_status(farms.client, job["executionUrl"], {"done"}, timeout=60)
        assert {farms.host_of(j["executionUrl"]) for j in jobs} == {"e1"}
    finally:
        script("second-engine.sh", "start", TEST_IMAGE)
    eventually(lambda: farms.hosts()["e2"]["circuit"] == "closed", timeout=60, what="e2's circuit to close")
