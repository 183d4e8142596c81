"""The Kubernetes manifests (deploy/k8s), rendered and checked offline: kustomize renders the base and every
overlay, kubeconform validates each object strictly (an unknown field is an error) against Kubernetes' own
OpenAPI schemas and the operators' CRD schemas, and the checks below read the rendered objects for what a
schema cannot know (probes on declared ports, the Docker socket only in the runner, non-root, settings that the
services really read, the migrate Job, the image override). deploy/scripts/k8s-tools.sh provides the tools and
the schema sources (`make provision`); nothing here needs a cluster or the network."""

import copy
import json
import os
import re
import subprocess
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.process.settings import ApiSettings, NotifierSettings, RunnerSettings, SchedulerSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
LOCAL = Path(os.environ.get("FASTLANE_LOCAL_DIR", ROOT / ".local"))
KUSTOMIZE = LOCAL / "bin" / "kustomize"
KUBECONFORM = LOCAL / "bin" / "kubeconform"
OPENAPI_DIR = LOCAL / "k8s" / "openapi"
CRDS_DIR = LOCAL / "k8s" / "crds"

TREES = ["base", "overlays/local", "overlays/production"]
OVERLAYS = ["overlays/local", "overlays/production"]
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}
SETTINGS_OF_SERVICE: dict[str, type[Settings]] = {
    "api": ApiSettings,
    "scheduler": SchedulerSettings,
    "runner": RunnerSettings,
    "notifier": NotifierSettings,
    "recorder": Settings,
    "migrate": Settings,
}
# Credentials and keys: in the Secret, never in the ConfigMap (docs/configuration.md, docs/kubernetes.md).
SECRET_SETTINGS = {
    "FASTLANE_BASIC_AUTH_USERNAME",
    "FASTLANE_BASIC_AUTH_PASSWORD",
    "FASTLANE_BEARER_TOKENS",
    "FASTLANE_WEBHOOK_SECRET",
    "FASTLANE_SMTP_USER",
    "FASTLANE_SMTP_PASSWORD",
    "FASTLANE_REGISTRY_AUTH",
}
DOCKER_SOCKET = "/var/run/docker.sock"
# libyaml's loader when PyYAML has it: the operators' CRDs are about 1 MB of YAML.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Doc = dict[str, Any]


# --- tools and rendering ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tools() -> None:
    """kustomize, kubeconform and the schema sources, provisioned when missing (as `make provision` does)."""
    subprocess.run([str(ROOT / "deploy" / "scripts" / "k8s-tools.sh")], check=True, timeout=900)


def kustomize_build(path: Path) -> list[Doc]:
    out = subprocess.run(
        [str(KUSTOMIZE), "build", str(path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [d for d in yaml.load_all(out, Loader=YAML_LOADER) if d]


@pytest.fixture(scope="session")
def rendered(tools: None) -> dict[str, list[Doc]]:
    return {tree: kustomize_build(K8S / tree) for tree in TREES}


# --- JSON schemas for kubeconform, made from the OpenAPI spec and the CRDs ---------------------------------------
# kubeconform finds a schema by the template {{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json, where
# Group is the apiVersion before the slash ("v1" for the core group). Each file is standalone (its definitions in
# $defs) and strict: every object that lists its properties refuses others, as `kubectl apply` would warn or fail.

SCHEMA_TEMPLATE = "{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json"
INT_OR_STRING = {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def schema_path(root: Path, api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    return root / (group or version) / version / f"{kind.lower()}.json"


def strict_openapi_v2(node: Any) -> Any:
    """A swagger 2 definition as a strict JSON schema (refs into $defs, int-or-string as either)."""
    if isinstance(node, list):
        return [strict_openapi_v2(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return INT_OR_STRING
    out = {k: strict_openapi_v2(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/definitions/", "#/$defs/")
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def kubernetes_schemas(spec: Doc, wanted: set[tuple[str, str]], root: Path) -> None:
    """Writes the schema of each wanted (apiVersion, kind) found in Kubernetes' swagger spec."""
    definitions: dict[str, Any] = spec["definitions"]
    # A Quantity is a string in the spec; the API server takes a number too ("cpu: 1").
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"anyOf": [{"type": "string"}, {"type": "number"}]}
    by_kind: dict[tuple[str, str], str] = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            by_kind.setdefault((api_version, gvk["kind"]), name)
    for api_version, kind in wanted:
        if (api_version, kind) not in by_kind:
            continue  # a custom resource: its CRD's schema is written below
        name = by_kind[(api_version, kind)]
        needed: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current not in needed:
                needed.add(current)
                todo.extend(re.findall(r'"#/definitions/([^"]+)"', json.dumps(definitions[current])))
        schema = {"$ref": f"#/$defs/{name}", "$defs": {n: strict_openapi_v2(definitions[n]) for n in needed}}
        path = schema_path(root, api_version, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema))


def strict_crd_schema(node: Any) -> Any:
    """A CRD's structural schema as a strict JSON schema, with the Kubernetes extensions it uses."""
    if isinstance(node, list):
        return [strict_crd_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string"):
        return INT_OR_STRING
    out = {k: strict_crd_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if preserve and node.get("format") == "byte":
        # kubebuilder's json.RawMessage (cass-operator's `config`): any JSON, written as an object.
        out.pop("type", None)
        out.pop("format", None)
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: Doc, root: Path) -> None:
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        if version.get("served", True):
            path = schema_path(root, f"{group}/{version['name']}", kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(strict_crd_schema(version["schema"]["openAPIV3Schema"])))


@pytest.fixture(scope="session")
def schemas(tools: None, rendered: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("k8s-schemas")
    (spec_file,) = OPENAPI_DIR.glob("kubernetes-*.json")
    wanted = {(d["apiVersion"], d["kind"]) for docs in rendered.values() for d in docs}
    kubernetes_schemas(json.loads(spec_file.read_text()), wanted, root)
    for crd_file in sorted(CRDS_DIR.glob("*.yaml")):
        for crd in yaml.load_all(crd_file.read_text(), Loader=YAML_LOADER):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                crd_schemas(crd, root)
    return root


def kubeconform(schemas: Path, docs: list[Doc]) -> list[Doc]:
    """kubeconform's result for each object (strict, schemas from `schemas` only, none missing allowed)."""
    proc = subprocess.run(
        [str(KUBECONFORM), "-strict", "-output", "json", "-verbose", "-schema-location",
         f"{schemas}/{SCHEMA_TEMPLATE}", "-"],
        input=yaml.safe_dump_all(docs, sort_keys=False),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    resources: list[Doc] = json.loads(proc.stdout)["resources"]
    return resources


# --- helpers over the rendered objects ---------------------------------------------------------------------------


def workloads(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Doc) -> Iterator[Doc]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def service_of(container: Doc) -> str:
    """`api` for a container running `python -m services.api`, and so on."""
    command = container.get("command", [])
    assert command[:2] == ["python", "-m"], f"{container['name']}: not `python -m services.<name>`: {command}"
    return str(command[2]).removeprefix("services.")


def main_container(workload: Doc) -> Doc:
    (main,) = pod_spec(workload)["containers"]
    container: Doc = main
    return container


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, prefix: str) -> Doc:
    (doc,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"].startswith(prefix)]
    return doc


def settings_data(docs: list[Doc]) -> dict[str, str]:
    return dict(named(docs, "ConfigMap", "fastlane-settings-")["data"])


# --- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tree", TREES)
def test_every_object_is_valid_against_the_kubernetes_and_operator_schemas(
    tree: str, rendered: dict[str, list[Doc]], schemas: Path
) -> None:
    results = kubeconform(schemas, rendered[tree])
    assert len(results) == len(rendered[tree])
    problems = [
        f"{r['kind']} {r['name']}: {r['status']} {r.get('msg', '')} {r.get('validationErrors') or ''}"
        for r in results
        if r["status"] != "statusValid"
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", ["spec", "template", "spec", "containers", 0, "livenessProbe", "httpGett"], {"port": 1}),
        ("DaemonSet", ["spec", "template", "spec", "containers", 0, "resources", "requests", "cpu"], {"a": 1}),
        ("Kafka", ["spec", "kafka", "listener"], []),
        ("KafkaNodePool", ["spec", "roles"], ["broker", "zookeeper"]),
        ("CassandraDatacenter", ["spec", "serverType"], "mysql"),
        ("CassandraDatacenter", ["spec", "storageConfig", "cassandraDataVolumeClaimSpecs"], {}),
    ],
)
def test_the_validation_refuses_unknown_fields_and_wrong_values(
    kind: str, path: list[Any], value: Any, rendered: dict[str, list[Doc]], schemas: Path
) -> None:
    broken = copy.deepcopy(by_kind(rendered["overlays/local"], kind)[0])
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (result,) = kubeconform(schemas, [broken])
    assert result["status"] == "statusInvalid", result


@pytest.mark.parametrize("tree", TREES)
def test_the_services_run_from_one_image_in_the_expected_workloads(tree: str, rendered: dict[str, list[Doc]]) -> None:
    docs = rendered[tree]
    kinds = {service_of(main_container(w)): (w["kind"], w["spec"].get("replicas")) for w in workloads(docs)}
    # The runner is one per node; the others are replicated (the API runs 2 in the base, more in production).
    assert kinds["runner"] == ("DaemonSet", None)
    assert kinds["migrate"][0] == "Job"
    assert kinds["api"][0] == "Deployment" and kinds["api"][1] >= 2
    for service in ("scheduler", "recorder", "notifier"):
        assert kinds[service][0] == "Deployment" and kinds[service][1] >= 1
    if tree == "base":
        assert all(replicas == 2 for kind, replicas in kinds.values() if kind == "Deployment")
    assert set(kinds) == set(SETTINGS_OF_SERVICE)
    images = {c["image"] for w in workloads(docs) for c in containers(w)}
    assert len(images) == 1, images


@pytest.mark.parametrize("tree", TREES)
def test_only_the_runner_mounts_the_docker_socket_and_it_reports_its_node(
    tree: str, rendered: dict[str, list[Doc]]
) -> None:
    for workload in workloads(rendered[tree]):
        sockets = {
            v["name"]
            for v in pod_spec(workload).get("volumes", [])
            if "docker" in v.get("hostPath", {}).get("path", "")
        }
        mounts = {m["name"] for c in containers(workload) for m in c.get("volumeMounts", [])}
        host_paths = [v for v in pod_spec(workload).get("volumes", []) if "hostPath" in v]
        if service_of(main_container(workload)) == "runner":
            assert workload["kind"] == "DaemonSet"
            assert host_paths == [{"name": "docker-sock", "hostPath": {"path": DOCKER_SOCKET, "type": "Socket"}}]
            runner = main_container(workload)
            assert {"name": "docker-sock", "mountPath": DOCKER_SOCKET} in runner["volumeMounts"]
            env = {e["name"]: e for e in runner["env"]}
            assert env["FASTLANE_HOST_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
            assert env["FASTLANE_DOCKER_HOST"]["value"] == f"unix://{DOCKER_SOCKET}"
            init_mounts = {
                m["name"] for c in pod_spec(workload).get("initContainers", []) for m in c.get("volumeMounts", [])
            }
            assert "docker-sock" not in init_mounts
        else:
            assert not host_paths and not (sockets & mounts), workload["metadata"]["name"]


@pytest.mark.parametrize("tree", TREES)
def test_every_probe_targets_a_declared_port_of_its_container(tree: str, rendered: dict[str, list[Doc]]) -> None:
    for workload in workloads(rendered[tree]):
        container = main_container(workload)
        service = service_of(container)
        kinds = ("startupProbe", "livenessProbe", "readinessProbe")
        if service == "migrate":
            assert not any(kind in container for kind in kinds)
            continue
        assert all(kind in container for kind in kinds), f"{service}: a probe is missing"
        probes: dict[str, Doc] = {kind: container[kind] for kind in kinds}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for kind, probe in probes.items():
            port = probe["httpGet"]["port"]
            assert port in ports or port in ports.values(), f"{service} {kind}: port {port} is not one of {ports}"
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
        expected_port = 10000 if service == "api" else 9100
        assert ports[probes["readinessProbe"]["httpGet"]["port"]] == expected_port


def test_the_api_service_reaches_the_api_pods_on_10000(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/production"]
    service = named(docs, "Service", "fastlane-api")
    api = named(docs, "Deployment", "fastlane-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 10000
    declared = {p["name"]: p["containerPort"] for p in main_container(api)["ports"]}
    assert declared[port["targetPort"]] == 10000


@pytest.mark.parametrize("tree", TREES)
def test_every_container_runs_unprivileged_and_bounded(tree: str, rendered: dict[str, list[Doc]]) -> None:
    for workload in workloads(rendered[tree]):
        pod_security = pod_spec(workload).get("securityContext", {})
        assert pod_spec(workload).get("hostNetwork") is not True and pod_spec(workload).get("hostPID") is not True
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, where
            assert security.get("runAsUser", 1) != 0 and security.get("runAsGroup", 1) != 0, where
            assert security.get("privileged") is not True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert "memory" in resources["limits"], where


@pytest.mark.parametrize("tree", TREES)
def test_every_setting_is_one_the_services_read_and_valid_for_them(
    tree: str, rendered: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered[tree]
    known = {f"FASTLANE_{name.upper()}" for cls in SETTINGS_OF_SERVICE.values() for name in cls.model_fields}
    documented = set(re.findall(r"`(FASTLANE_[A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))
    config = settings_data(docs)
    secrets = {k: b64decode(v).decode() for s in by_kind(docs, "Secret") for k, v in s.get("data", {}).items()}
    assert not SECRET_SETTINGS & config.keys(), "secret settings belong in the Secret"
    assert secrets.keys() <= SECRET_SETTINGS
    for workload in workloads(docs):
        for container in containers(workload):
            assert {"configMapRef": {"name": named(docs, "ConfigMap", "fastlane-settings-")["metadata"]["name"]}} in (
                container["envFrom"]
            )
            assert any(
                s.get("secretRef", {}).get("name", "").startswith("fastlane-secrets") for s in container["envFrom"]
            )
            env = {e["name"]: e.get("value", "from-the-downward-api") for e in container.get("env", [])}
            names = {n for n in (*config, *secrets, *env) if n.startswith("FASTLANE_")}
            assert names <= known, f"not a setting: {names - known}"
            assert names <= documented, f"not in docs/configuration.md: {names - documented}"
            if container["name"] == "wait-for-migration":
                assert env == {"PYTHONPATH": "/app"}
                continue
            # The values parse as the service's own settings class would read them at start-up.
            for name in list(os.environ):
                if name.startswith("FASTLANE_"):
                    monkeypatch.delenv(name)
            for name, value in {**config, **secrets, **env}.items():
                monkeypatch.setenv(name, value)
            SETTINGS_OF_SERVICE[service_of(container)]()


def test_the_secret_settings_are_documented_settings() -> None:
    known = {f"FASTLANE_{name.upper()}" for cls in SETTINGS_OF_SERVICE.values() for name in cls.model_fields}
    assert known >= SECRET_SETTINGS


@pytest.mark.parametrize("tree", TREES)
def test_the_migrate_job_runs_once_and_every_service_waits_for_it(tree: str, rendered: dict[str, list[Doc]]) -> None:
    docs = rendered[tree]
    (job,) = by_kind(docs, "Job")
    assert main_container(job)["command"] == ["python", "-m", "services.migrate"]
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never") and job["spec"]["backoffLimit"] >= 1
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue
        # The services wait for the migration's version by themselves too (services.migrate.await_migrated); the
        # init container keeps a pod out of Running until then.
        (wait,) = pod_spec(workload)["initContainers"]
        assert wait["command"] == ["python", "-m", "services.migrate", "--wait"]
        assert wait["image"] == main_container(workload)["image"]


@pytest.mark.parametrize("tree", TREES)
def test_every_replicated_service_has_a_disruption_budget(tree: str, rendered: dict[str, list[Doc]]) -> None:
    docs = rendered[tree]
    budgets = by_kind(docs, "PodDisruptionBudget")
    for deployment in by_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, deployment["metadata"]["name"]
        if deployment["spec"]["replicas"] >= 2:
            budget = matching[0]["spec"]
            assert budget.get("minAvailable", 0) >= 1 or budget.get("maxUnavailable", 0) >= 1


def test_the_image_is_overridable(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    production = rendered["overlays/production"]
    assert {c["image"] for w in workloads(production) for c in containers(w)} == {"registry.example.com/fastlane:1.0.0"}
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S / "overlays" / "local", tmp_path)],
                "images": [
                    {"name": "fastlane", "newName": "other.example/team/fastlane", "digest": "sha256:" + "a" * 64}
                ],
            }
        )
    )
    images = {c["image"] for w in workloads(kustomize_build(tmp_path)) for c in containers(w)}
    assert images == {"other.example/team/fastlane@sha256:" + "a" * 64}


def test_the_operators_component_makes_kafka_in_kraft_and_cassandra_and_points_the_settings_at_them(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/local"]
    (kafka,) = by_kind(docs, "Kafka")
    (pool,) = by_kind(docs, "KafkaNodePool")
    (dc,) = by_kind(docs, "CassandraDatacenter")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1" and "zookeeper" not in kafka["spec"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}  # KRaft: the nodes are their own controllers
    (plain,) = [listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["name"] == "plain"]
    config = settings_data(docs)
    assert config["FASTLANE_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    assert config["FASTLANE_CASSANDRA_HOSTS"] == f"{dc['spec']['clusterName']}-{dc['metadata']['name']}-service"
    assert int(config["FASTLANE_CASSANDRA_REPLICATION_FACTOR"]) <= dc["spec"]["size"]
    # Single-node sizes: every replication factor fits the one broker.
    kafka_config = kafka["spec"]["kafka"]["config"]
    assert all(kafka_config[k] <= pool["spec"]["replicas"] for k in kafka_config if "replication.factor" in k)
    # fastlane's clients have no credentials: authentication stays off where the backends would ask for it.
    assert "authentication" not in plain
    assert dc["spec"]["config"]["cassandra-yaml"]["authenticator"] == "AllowAllAuthenticator"
    # Production reaches existing backends instead: no operator resources there.
    production = rendered["overlays/production"]
    assert not {"Kafka", "KafkaNodePool", "CassandraDatacenter"} & {d["kind"] for d in production}
    assert "example.internal" not in settings_data(production)["FASTLANE_KAFKA_BOOTSTRAP"]


@pytest.mark.parametrize("tree", OVERLAYS)
def test_prometheus_scrapes_every_service_on_a_declared_port(tree: str, rendered: dict[str, list[Doc]]) -> None:
    for workload in workloads(rendered[tree]):
        container = main_container(workload)
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if service_of(container) == "migrate":
            assert not annotations
            continue
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) in {p["containerPort"] for p in container["ports"]}


@pytest.mark.parametrize("tree", OVERLAYS)
def test_the_namespace_admits_the_runner_and_warns_about_everything_else(
    tree: str, rendered: dict[str, list[Doc]]
) -> None:
    docs = rendered[tree]
    (namespace,) = by_kind(docs, "Namespace")
    labels = namespace["metadata"]["labels"]
    # hostPath (the Docker socket) is refused by the baseline and restricted levels.
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert all(d["metadata"].get("namespace") == namespace["metadata"]["name"] for d in docs if d is not namespace)
