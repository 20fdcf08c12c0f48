"""The Helm chart: lint, render, strict schema validation per Kubernetes
version, values schema, best-practice invariants, docs, helm-unittest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "preflight"
# The values the chart requires and has no default for (an eval-log store), added to the defaults.
REQUIRED_VALUES = REPO / "deploy" / "helm" / "tools" / "required-values.yaml"
VALUES_FILES = {
    "default": [REQUIRED_VALUES],
    "minimal": [CHART / "examples/minimal.yaml"],
    "production": [CHART / "examples/production.yaml"],
    "strimzi": [CHART / "examples/strimzi.yaml"],
}
KUBE_VERSIONS = ["1.34.0", "1.35.0", "1.36.0", "1.37.0"]
SERVICES = ["intake", "benchmark", "clearinghouse", "notifier"]
# The web console: a Deployment too, but HTTP (no gRPC, no Kafka, no secrets).
CONSOLE = "preflight-console"


def render(helm: str, check_chart: ModuleType, files: list[Path]) -> list[dict[str, Any]]:
    res = check_chart.render(helm, CHART, files)
    assert res.returncode == 0, res.stderr
    return check_chart.documents(res.stdout)


@pytest.fixture(scope="module", params=sorted(VALUES_FILES))
def rendered(request: pytest.FixtureRequest, helm: str, check_chart: ModuleType) -> list[dict[str, Any]]:
    return render(helm, check_chart, VALUES_FILES[request.param])


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def dispatcher_rbac(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The dispatcher's Roles or RoleBindings (not the workers' in the sandbox namespace)."""
    return [d for d in of_kind(docs, kind) if not d["metadata"]["name"].endswith("-sandbox")]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


def kafka_clients(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The pods that talk to Kafka: every one but the console's and the migration hooks'."""
    return [
        (name, spec) for name, spec in pod_specs(docs) if name != CONSOLE and not name.endswith("-migrate")
    ]


def env_of(docs: list[dict[str, Any]], deployment: str) -> dict[str, dict[str, Any]]:
    dep = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == deployment)
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_helm_lint_strict(helm: str, values: str) -> None:
    cmd = [helm, "lint", "--strict", str(CHART)]
    for f in VALUES_FILES[values]:
        cmd += ["-f", str(f)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_manifests_validate_strictly(helm: str, check_chart: ModuleType, values: str, version: str) -> None:
    docs = render(helm, check_chart, VALUES_FILES[values])
    assert docs
    assert check_chart.validate_objects(docs, [version]) == []


def test_validation_catches_a_broken_manifest(check_chart: ModuleType) -> None:
    """The validator itself is strict: unknown fields and wrong types fail."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "grpc"}], "selectr": {}},
    }
    assert check_chart.validate_objects([bad], ["1.36.0"])


def test_bad_values_fail_to_render(helm: str, check_chart: ModuleType) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i, (what, overlay) in enumerate(check_chart.BAD_VALUES):
            f = Path(tmp) / f"{i}.yaml"
            f.write_text(yaml.safe_dump(overlay))
            res = check_chart.render(helm, CHART, [REQUIRED_VALUES, f])
            assert res.returncode != 0, f"rendered: {what}"
            assert (
                "values don't meet the specifications of the schema" in res.stderr
                or "execution error" in res.stderr
            ), f"{what}: unexpected failure: {res.stderr}"
            assert "nil pointer" not in res.stderr, f"{what}: template crash: {res.stderr}"


def strimzi(docs: list[dict[str, Any]]) -> bool:
    """Whether Strimzi manages the topics and users (then there is no provisioning Job)."""
    return bool(of_kind(docs, "KafkaUser"))


def test_every_kind_expected(rendered: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in rendered}
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    provisioning = {"KafkaTopic", "KafkaUser"} if strimzi(rendered) else {"Job"}
    assert provisioning <= kinds
    names = {d["metadata"]["name"] for d in of_kind(rendered, "Deployment")}
    assert names == {f"preflight-{s}" for s in SERVICES} | {CONSOLE}
    assert {d["metadata"]["name"] for d in of_kind(rendered, "Service")} == names


def test_labels_everywhere(rendered: list[dict[str, Any]]) -> None:
    for d in rendered:
        labels = d["metadata"].get("labels", {})
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of",
            "helm.sh/chart",
        ):
            assert key in labels, f"{d['kind']}/{d['metadata']['name']} lacks {key}"


def test_restricted_pod_security(rendered: list[dict[str, Any]]) -> None:
    specs = pod_specs(rendered)
    # 4 services, the console, the topics hook and the services' 4 migration hooks
    assert len(specs) == (9 if strimzi(rendered) else 10)
    for name, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is (name == "preflight-benchmark"), name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], name
            assert c["resources"]["requests"] and c["resources"]["limits"], name
            # What a container writes to its emptyDirs counts against the node's disk: scheduled by it.
            assert "ephemeral-storage" in c["resources"]["requests"], name
            assert "ephemeral-storage" in c["resources"]["limits"], name
        tmp = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert tmp and "emptyDir" in tmp[0], name


def test_grpc_probes(rendered: list[dict[str, Any]]) -> None:
    """Probes check gRPC health on the API port, or on the plaintext health port when the API
    serves TLS (Kubernetes gRPC probes cannot speak TLS)."""
    for d in of_kind(rendered, "Deployment"):
        if d["metadata"]["name"] == CONSOLE:
            continue
        c = d["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        tls = any(v["name"].endswith("_TLS_CERT") for v in c["env"])
        assert ("health" in ports) is tls
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["grpc"]["port"] == ports["health" if tls else "grpc"]
        assert c["livenessProbe"]["grpc"]["service"] == "preflight.liveness"
        # Readiness is the API's own: it keeps serving while Kafka or a consumer is stuck.
        assert "service" not in c["readinessProbe"]["grpc"]


def test_console_probes_and_reach(rendered: list[dict[str, Any]]) -> None:
    """The console answers HTTP probes, and may reach only the services it calls (and DNS)."""
    (console,) = [d for d in of_kind(rendered, "Deployment") if d["metadata"]["name"] == CONSOLE]
    spec = console["spec"]["template"]["spec"]
    c = spec["containers"][0]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    # No token, and nothing taken from elsewhere (a Secret's key): every variable is a plain value.
    assert not [e["name"] for e in c["env"] if "TOKEN" in e["name"] or "valueFrom" in e]
    env = {v["name"]: v["value"] for v in c["env"]}
    assert env["PREFLIGHT_CONSOLE_SESSION_KEY_FILE"].startswith("/var/lib/preflight/")
    # Every example release enforces NetworkPolicies (networkPolicy.enabled defaults to true).
    (policy,) = [p for p in of_kind(rendered, "NetworkPolicy") if p["metadata"]["name"] == CONSOLE]
    reached = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "podSelector" in peer and "app.kubernetes.io/component" in peer["podSelector"]["matchLabels"]
    }
    assert reached == {"intake", "benchmark", "clearinghouse", "notifier"}


def test_dispatcher_rbac_is_minimal(rendered: list[dict[str, Any]]) -> None:
    (role,) = dispatcher_rbac(rendered, "Role")
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        },
        # Each Job's token Secret: created, never read back.
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["preflight-benchmark-dispatcher"],
            "verbs": ["get", "update"],
        },
    ]
    assert not of_kind(rendered, "ClusterRole") and not of_kind(rendered, "ClusterRoleBinding")
    (binding,) = dispatcher_rbac(rendered, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "preflight-benchmark", "namespace": "preflight"}
    ]
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]


def test_pdb_per_service(rendered: list[dict[str, Any]]) -> None:
    assert len(of_kind(rendered, "PodDisruptionBudget")) == 4


def test_network_policies_cover_every_pod(rendered: list[dict[str, Any]]) -> None:
    # The release's own pods; the sandbox namespace's deny-all (an empty selector) has its own test.
    policies = [p for p in of_kind(rendered, "NetworkPolicy") if p["spec"]["podSelector"]]
    deny = [p for p in policies if p["metadata"]["name"].endswith("default-deny")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny[0]["spec"] and "egress" not in deny[0]["spec"]

    def selected(labels: dict[str, str]) -> list[str]:
        return [
            p["metadata"]["name"]
            for p in policies
            if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]

    pods = [
        (d["metadata"]["name"], d["spec"]["template"]["metadata"]["labels"])
        for d in rendered
        if d["kind"] in ("Deployment", "Job")
    ]
    # The labels the benchmark service puts on worker pods (adapters/executors/k8s_manifest.py).
    pods.append(
        (
            "worker",
            {
                "app.kubernetes.io/name": "preflight-worker",
                "app.kubernetes.io/part-of": "preflight",
                "app.kubernetes.io/component": "benchmark-worker",
                "app.kubernetes.io/managed-by": "preflight-benchmark",
            },
        )
    )
    for name, labels in pods:
        allow = [n for n in selected(labels) if not n.endswith("default-deny")]
        assert allow, f"{name}: no allow policy (would be cut off entirely)"
        for p in policies:
            if p["metadata"]["name"] in allow:
                dns = p["spec"]["egress"][0]["ports"]
                assert {"port": 53, "protocol": "UDP"} in dns, f"{name}: no DNS egress"


def test_benchmark_worker_settings(rendered: list[dict[str, Any]]) -> None:
    import json

    env = env_of(rendered, "preflight-benchmark")
    (role,) = dispatcher_rbac(rendered, "Role")
    assert env["PREFLIGHT_BENCHMARK_K8S_NAMESPACE"]["value"] == role["metadata"]["namespace"]
    assert env["PREFLIGHT_BENCHMARK_K8S_IMAGE"]["value"].rsplit("/", 1)[1].startswith("preflight-worker")
    # Workers get a token of their own job (a Secret per Job), never a Secret of the service's token.
    assert "PREFLIGHT_BENCHMARK_K8S_SERVICE_TOKEN_SECRET" not in env
    assert env["PREFLIGHT_BENCHMARK_K8S_SERVICE_ACCOUNT"]["value"] == "preflight-worker"
    for name in ("NODE_SELECTOR", "GPU_NODE_SELECTOR"):
        assert isinstance(json.loads(env[f"PREFLIGHT_BENCHMARK_K8S_{name}"]["value"]), dict)
    for name in ("TOLERATIONS", "GPU_TOLERATIONS"):
        assert isinstance(json.loads(env[f"PREFLIGHT_BENCHMARK_K8S_{name}"]["value"]), list)
    # Workers may run in another namespace: fully qualified service names.
    assert env["PREFLIGHT_INTAKE_TARGET"]["value"] == "preflight-intake.preflight.svc:50051"
    assert env["PREFLIGHT_BENCHMARK_TARGET"]["value"] == "preflight-benchmark.preflight.svc:50052"
    sa = [d for d in of_kind(rendered, "ServiceAccount") if d["metadata"]["name"] == "preflight-worker"]
    assert sa and sa[0]["automountServiceAccountToken"] is False
    assert sa[0]["metadata"]["namespace"] == role["metadata"]["namespace"]


def test_every_env_value_is_a_string(rendered: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(rendered):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for e in c["env"]:
                assert ("value" in e) != ("valueFrom" in e), (name, e)
                assert "value" not in e or isinstance(e["value"], str), (name, e)


SECRETS = {
    "preflight-intake": ["PREFLIGHT_DATABASE_URL", "PREFLIGHT_INTAKE_ENCRYPTION_KEYS"],
    "preflight-benchmark": ["PREFLIGHT_DATABASE_URL", "PREFLIGHT_SERVICE_TOKEN"],
    "preflight-clearinghouse": [
        "PREFLIGHT_DATABASE_URL",
        "PREFLIGHT_SERVICE_TOKEN",
        "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY",
    ],
    "preflight-notifier": ["PREFLIGHT_DATABASE_URL", "PREFLIGHT_SERVICE_TOKEN"],
}


def test_secrets_only_as_mounted_files(rendered: list[dict[str, Any]]) -> None:
    """No container gets a secret in its environment (no secretKeyRef, no envFrom a Secret): each
    service reads its secrets from files of a read-only Secret volume, named by `<NAME>_FILE`."""
    assert not of_kind(rendered, "Secret"), "the chart never carries secret material"
    for name, spec in pod_specs(rendered):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for e in c["env"]:
                assert "secretKeyRef" not in e.get("valueFrom", {}), (name, c["name"], e["name"])
            assert not any("secretRef" in source for source in c.get("envFrom", [])), (name, c["name"])
    for dep, secrets in SECRETS.items():
        spec = next(s for n, s in pod_specs(rendered) if n == dep)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"]: e for e in c["env"]}
            for var in secrets:
                assert var not in env, (dep, var)
                path = Path(env[f"{var}_FILE"]["value"])
                (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(path.parent)]
                assert mount["readOnly"] is True, (dep, var)
                secret = volumes[mount["name"]]["secret"]
                assert path.name in [item["path"] for item in secret["items"]], (dep, var)


def test_kafka_passwords_only_as_files(rendered: list[dict[str, Any]]) -> None:
    """Every Kafka client (services, provisioning) reads its password from a file
    mounted from a Secret: never from an environment variable."""
    for name, spec in kafka_clients(rendered):
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"]: e for e in c["env"]}
            assert "PREFLIGHT_KAFKA_SASL_PASSWORD" not in env, name
            path = Path(env["PREFLIGHT_KAFKA_SASL_PASSWORD_FILE"]["value"])
            (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(path.parent)]
            secret = volumes[mount["name"]]["secret"]
            assert [item["path"] for item in secret["items"]] == [path.name], name


def test_production_example_settings(helm: str, check_chart: ModuleType) -> None:
    docs = render(helm, check_chart, VALUES_FILES["production"])
    assert len(of_kind(docs, "HorizontalPodAutoscaler")) == 2
    assert len(of_kind(docs, "ServiceMonitor")) == 4
    (role,) = dispatcher_rbac(docs, "Role")
    assert role["metadata"]["namespace"] == "preflight-benchmarks"
    env = env_of(docs, "preflight-benchmark")
    assert env["PREFLIGHT_BENCHMARK_K8S_KUEUE_QUEUE"]["value"] == "preflight-gpu"
    assert "nvidia" in env["PREFLIGHT_BENCHMARK_K8S_GPU_NODE_SELECTOR"]["value"]
    nenv = env_of(docs, "preflight-notifier")
    notifier = next(s for n, s in pod_specs(docs) if n == "preflight-notifier")
    (secrets,) = [v["secret"] for v in notifier["volumes"] if v["name"] == "secrets"]
    assert secrets["secretName"] == "preflight-notifier"
    assert {"key": "webhook-bank-a", "path": "webhook-bank-a"} in secrets["items"]
    (config,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "preflight-notifier"]
    assert "secret_file: /etc/preflight/secrets/webhook-bank-a" in config["data"]["routing.yaml"]
    assert nenv["PREFLIGHT_KAFKA_SASL_USERNAME"]["value"] == "preflight-notifier"
    (job,) = [j for j in of_kind(docs, "Job") if j["metadata"]["name"] == "preflight-topics"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "--acls",
        "--credentials-dir",
        "/etc/preflight/kafka-credentials",
    ]


# The configuration files: chart defaults == what the services ship; and every
# file the chart renders is accepted by the service's own loader.
SHIPPED = {
    "catalog.yaml": "services/benchmark/src/preflight_benchmark/catalog/suites.yaml",
    "policy.yaml": "services/clearinghouse/src/preflight_clearinghouse/policy/risk-policy.yaml",
    "routing.yaml": "services/notifier/src/preflight_notifier/routing/routing.yaml",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_default_config_files_match_the_services(name: str, require) -> None:  # type: ignore[no-untyped-def]
    shipped = REPO / SHIPPED[name]
    require(shipped.exists(), f"{SHIPPED[name]} does not exist")
    assert (CHART / "files" / name).read_text() == shipped.read_text(), (
        f"copy {SHIPPED[name]} to deploy/helm/preflight/files/{name}"
    )


def _loaders(require):  # type: ignore[no-untyped-def]
    import importlib

    out = {}
    for file, (module, fn) in {
        "catalog.yaml": ("preflight_benchmark.adapters.catalog_file", "load_catalog"),
        "policy.yaml": ("preflight_clearinghouse.bootstrap", "load_policy"),
        "routing.yaml": ("preflight_notifier.adapters.routing_file", "load_routing"),
        "participants.yaml": ("preflight_common.bus", "Participants.load"),
    }.items():
        try:
            target: Any = importlib.import_module(module)
            for attr in fn.split("."):
                target = getattr(target, attr)
            out[file] = target
        except (ImportError, AttributeError) as exc:
            require(False, f"{module}.{fn}: {exc}")
    return out


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_rendered_config_files_load_in_the_services(
    helm: str, check_chart: ModuleType, values: str, require, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    loaders = _loaders(require)
    docs = render(helm, check_chart, VALUES_FILES[values])
    seen = set()
    # The Helm values of Inspect's Kubernetes sandbox are no service's: the sandbox tests read them.
    for cm in [d for d in of_kind(docs, "ConfigMap") if not d["metadata"]["name"].endswith("-k8s-sandbox")]:
        for file, text in cm["data"].items():
            path = tmp_path / file
            path.write_text(text)
            assert loaders[file](path) is not None, file
            seen.add(file)
    assert seen == {*SHIPPED, "participants.yaml"}


def test_values_schema_is_draft_2020_12_and_accepts_defaults() -> None:
    import json

    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    for files in VALUES_FILES.values():
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        for f in files:
            values = _merge(values, yaml.safe_load(f.read_text()))
        assert not list(v.iter_errors(values))


def test_values_schema_is_generated() -> None:
    res = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "helm" / "tools" / "gen_schema.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout == (CHART / "values.schema.json").read_text(), (
        "values.schema.json is stale: regenerate it with deploy/helm/tools/gen_schema.py"
    )


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, val in b.items():
            out[k] = _merge(a.get(k), val)
        return out
    return b


def test_every_value_is_documented_and_readme_in_sync(values_table: ModuleType) -> None:
    text = (CHART / "values.yaml").read_text()
    assert values_table.undocumented(yaml.safe_load(text), values_table.documented_keys(text)) == []
    assert values_table.render_readme(CHART) == (CHART / "README.md").read_text(), (
        "README values table is stale: run deploy/helm/tools/values_table.py deploy/helm/preflight"
    )


def test_helm_unittest_suites(helm_unittest: str) -> None:
    suites = sorted((CHART / "tests").glob("*_test.yaml"))
    assert len(suites) >= 5
    res = subprocess.run(
        [helm_unittest, "--strict", "--color=false", str(CHART)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert (
        "Test Suites: " in res.stdout and " failed" not in res.stdout.split("Test Suites:")[1].split("\n")[0]
    )


# The event bus: what the chart grants and configures is what preflight_common.bus derives.
PARTICIPANTS = [
    {"name": "bank-a", "sectors": ["finance"]},
    {"name": "grid-operator", "sectors": ["energy", "finance"]},
    {"name": "hospital-b"},
]


def render_strimzi(helm: str, check_chart: ModuleType, tmp_path: Path) -> list[dict[str, Any]]:
    values = tmp_path / "participants.yaml"
    values.write_text(yaml.safe_dump({"participants": PARTICIPANTS}))
    return render(helm, check_chart, [*VALUES_FILES["strimzi"], values])


def test_strimzi_acls_are_the_bus_grants(helm: str, check_chart: ModuleType, tmp_path: Path) -> None:
    from preflight_common import bus
    from preflight_common.config import Topics

    docs = render_strimzi(helm, check_chart, tmp_path)
    rendered = set()
    for user in of_kind(docs, "KafkaUser"):
        assert user["spec"]["authorization"]["type"] == "simple"
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*", acl
            resource = acl["resource"]
            pattern = {"literal": bus.Pattern.LITERAL, "prefix": bus.Pattern.PREFIXED}[
                resource["patternType"]
            ]
            for operation in acl["operations"]:
                rendered.add(
                    bus.Grant(
                        f"User:{user['metadata']['name']}",
                        bus.ResourceType(resource["type"].upper()),
                        resource["name"],
                        pattern,
                        bus.Operation(operation.upper()),
                    )
                )
    participants = bus.Participants.parse({"organisations": PARTICIPANTS})
    assert rendered == set(bus.grants(Topics(), participants))


def test_strimzi_topics_are_the_provisioned_ones(
    helm: str, check_chart: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preflight_common import bus, topics
    from preflight_common.config import Topics

    docs = render_strimzi(helm, check_chart, tmp_path)
    values = yaml.safe_load((CHART / "examples" / "strimzi.yaml").read_text())["kafka"]["topics"]
    monkeypatch.setenv("PREFLIGHT_TOPIC_PARTITIONS", str(values["partitions"]))
    monkeypatch.setenv("PREFLIGHT_TOPIC_REPLICATION", str(values["replicationFactor"]))
    participants = bus.Participants.parse({"organisations": PARTICIPANTS})
    specs = [*topics.configured_specs(Topics()), *topics.alert_specs(Topics(), participants)]
    rendered = {
        (
            t["spec"]["topicName"],
            t["spec"]["partitions"],
            t["spec"]["replicas"],
            t["spec"]["config"]["retention.ms"],
        )
        for t in of_kind(docs, "KafkaTopic")
    }
    assert rendered == {(s.name, s.partitions, s.replication, s.retention_ms) for s in specs}


def test_strimzi_resources_validate_against_the_crds(
    helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    docs = render_strimzi(helm, check_chart, tmp_path)
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in check_chart.CRD_SCHEMAS]
    assert len(custom) == len(of_kind(docs, "KafkaTopic")) + len(of_kind(docs, "KafkaUser")) > 0
    assert check_chart.validate_objects(docs, []) == []


def test_strimzi_certificate_users_with_reflected_secrets_validate_against_the_crds(
    helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """With mutual TLS the services' KafkaUsers authenticate by certificate (the participants' keep
    SCRAM-SHA-512) and every user's Secret carries the reflection annotations; all validate."""
    annotations = {"reflector.v1.k8s.emberstack.com/reflection-auto-namespaces": "preflight"}
    overlay = tmp_path / "mtls.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "participants": PARTICIPANTS,
                "kafka": {
                    "securityProtocol": "SSL",
                    "strimzi": {"namespace": "kafka", "userSecretAnnotations": annotations},
                },
            }
        )
    )
    docs = render(helm, check_chart, [*VALUES_FILES["strimzi"], overlay])
    users = of_kind(docs, "KafkaUser")
    assert check_chart.validate_objects(users, []) == []
    kinds = {u["metadata"]["name"]: u["spec"]["authentication"]["type"] for u in users}
    assert kinds == {
        **{f"preflight-{s}": "tls" for s in SERVICES},
        **{f"operator-{p['name']}": "scram-sha-512" for p in PARTICIPANTS},
    }
    assert all(u["spec"]["template"]["secret"]["metadata"]["annotations"] == annotations for u in users)


GRPC_SERVICES = {
    "intake": [
        "preflight.intake.v1.IntakeService",
        "preflight.identity.v1.IdentityService",
        "preflight.intake.v1.SignInService",
    ],
    "benchmark": ["preflight.benchmark.v1.BenchmarkService"],
    "clearinghouse": ["preflight.clearinghouse.v1.ClearinghouseService"],
    "notifier": ["preflight.notifier.v1.NotifierService"],
}


def test_one_address_routes_every_grpc_service_to_its_component(
    helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """With gateway.enabled one GRPCRoute, valid against the Gateway API v1 schema, sends every
    service the protos declare, by name, to the Service of the component that serves it."""
    values = tmp_path / "gateway.yaml"
    parent = {"name": "edge", "namespace": "gateways", "sectionName": "grpc"}
    values.write_text(
        yaml.safe_dump(
            {"gateway": {"enabled": True, "parentRefs": [parent], "hostnames": ["preflight.example"]}}
        )
    )
    docs = render(helm, check_chart, [*VALUES_FILES["default"], values])
    (route,) = of_kind(docs, "GRPCRoute")
    assert check_chart.validate_objects([route], []) == []
    assert route["spec"]["parentRefs"] == [parent]
    services = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in of_kind(docs, "Service")}
    routed = {}
    for rule in route["spec"]["rules"]:
        (backend,) = rule["backendRefs"]
        assert services[backend["name"]] == backend["port"]
        routed[backend["name"]] = [m["method"]["service"] for m in rule["matches"]]
    assert routed == {f"preflight-{name}": names for name, names in GRPC_SERVICES.items()}
    declared = set()
    for proto in (REPO / "protos").rglob("*.proto"):
        text = proto.read_text()
        package = re.search(r"^package (\S+);", text, re.M)
        declared |= {f"{package[1]}.{name}" for name in re.findall(r"^service (\w+)", text, re.M) if package}
    assert declared == {name for names in GRPC_SERVICES.values() for name in names}
    assert of_kind(render(helm, check_chart, VALUES_FILES["default"]), "GRPCRoute") == []


def test_grpcroute_validation_catches_a_broken_route(check_chart: ModuleType) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": "preflight"},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "rules": [
                {
                    "matches": [
                        {"method": {"type": "Exact", "service": "preflight.intake.v1.IntakeService"}}
                    ],
                    "backendRefs": [{"name": "preflight-intake", "port": 50051}],
                }
            ],
        },
    }
    assert check_chart.validate_objects([route], []) == []
    typo = yaml.safe_load(yaml.safe_dump(route))
    typo["spec"]["rules"][0]["backendRefs"][0]["serviceName"] = "preflight-intake"
    kind = yaml.safe_load(yaml.safe_dump(route))
    kind["spec"]["rules"][0]["matches"][0]["method"]["type"] = "Prefix"
    port = yaml.safe_load(yaml.safe_dump(route))
    port["spec"]["rules"][0]["backendRefs"][0]["port"] = 0
    for bad in (typo, kind, port):
        assert check_chart.validate_objects([bad], []), bad


def test_crd_validation_catches_a_broken_resource(check_chart: ModuleType) -> None:
    """Unknown fields, wrong enums and names Kubernetes refuses fail."""
    user = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": "preflight-intake"},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [{"resource": {"type": "topic", "name": "t"}, "operations": ["Read"]}],
            },
        },
    }
    assert check_chart.validate_objects([user], []) == []
    typo = yaml.safe_load(yaml.safe_dump(user))
    typo["spec"]["authorization"]["acls"][0]["resource"]["patterntype"] = "prefix"
    enum = yaml.safe_load(yaml.safe_dump(user))
    enum["spec"]["authorization"]["acls"][0]["operations"] = ["READ"]
    name = {**user, "metadata": {"name": "Preflight_Intake"}}
    for bad in (typo, enum, name):
        assert check_chart.validate_objects([bad], []), bad


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_rendered_kafka_settings_load_in_the_services(
    helm: str, check_chart: ModuleType, values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each container's PREFLIGHT_KAFKA_* and PREFLIGHT_TOPIC_* variables are the ones
    preflight_common reads: the settings load, as the service's own principal, with every topic
    named as configured."""
    from dataclasses import fields

    from preflight_common.config import KafkaSettings, Topics

    docs = render(helm, check_chart, VALUES_FILES[values])
    sizing = {"PARTITIONS", "REPLICATION", "RETENTION_MS"}
    for name, spec in kafka_clients(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"]: e.get("value", "") for e in c["env"]}
            for var in [v for v in env if v.startswith("PREFLIGHT_TOPIC_")]:
                field = var.removeprefix("PREFLIGHT_TOPIC_")
                assert field in sizing or field.lower() in {f.name for f in fields(Topics)}, var
            with monkeypatch.context() as m:
                for var in [v for v in os.environ if v.startswith(("PREFLIGHT_KAFKA_", "PREFLIGHT_TOPIC_"))]:
                    m.delenv(var)
                for var, value in env.items():
                    if var.startswith(("PREFLIGHT_KAFKA_", "PREFLIGHT_TOPIC_")):
                        m.setenv(var, value)
                settings = KafkaSettings.from_env()
                assert Topics.from_env() == Topics()
            assert settings.security_protocol.startswith("SASL_"), name
            assert settings.sasl_password_file == "/etc/preflight/kafka-sasl/password"
            if name != "preflight-topics":
                assert settings.sasl_username == name, name


def test_mutual_tls_clients_load_their_certificate_from_mounted_files(
    helm: str, check_chart: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `kafka.securityProtocol: SSL` every Kafka client (services, provisioning) loads
    settings that authenticate by its own client certificate, read from files of a read-only
    Secret volume (Strimzi's user.crt/user.key), with no SASL setting at all; the manifests validate."""
    from preflight_common.config import KafkaSettings

    overlay = tmp_path / "mtls.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {"kafka": {"securityProtocol": "SSL", "tls": {"caSecret": {"name": "events-cluster-ca-cert"}}}}
        )
    )
    docs = render(helm, check_chart, [*VALUES_FILES["default"], overlay])
    assert check_chart.validate_objects(docs, KUBE_VERSIONS[-1:]) == []
    clients = kafka_clients(docs)
    assert {name for name, _ in clients} >= {f"preflight-{s}" for s in SERVICES} | {"preflight-topics"}
    for name, spec in clients:
        volumes = {v["name"]: v for v in spec["volumes"]}
        (c,) = spec["containers"]
        env = {e["name"]: e.get("value", "") for e in c["env"]}
        assert not [var for var in env if var.startswith("PREFLIGHT_KAFKA_SASL_")], name
        with monkeypatch.context() as m:
            for var in [v for v in os.environ if v.startswith("PREFLIGHT_KAFKA_")]:
                m.delenv(var)
            for var, value in env.items():
                if var.startswith("PREFLIGHT_KAFKA_"):
                    m.setenv(var, value)
            settings = KafkaSettings.from_env()
        assert settings.security_protocol == "SSL", name
        certificate, key = Path(settings.ssl_certfile), Path(settings.ssl_keyfile)
        assert certificate.parent == key.parent, name
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(certificate.parent)]
        assert mount["readOnly"] is True, name
        secret = volumes[mount["name"]]["secret"]
        owner = "preflight-kafka-admin" if name == "preflight-topics" else name
        assert secret["secretName"] == owner, name
        assert {item["key"]: item["path"] for item in secret["items"]} == {
            "user.crt": certificate.name,
            "user.key": key.name,
        }, name


def test_helm_test_pods_read_each_service_with_the_probe_token_from_a_mounted_file(
    helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """With a probe token every test Pod runs `preflight-health --read <its service>` (a service
    the command knows), reading the token from a file of a read-only Secret volume; they validate."""
    from preflight_common.healthcheck import READS

    overlay = tmp_path / "probe.yaml"
    overlay.write_text(yaml.safe_dump({"helmTest": {"probeToken": {"existingSecret": "preflight-probe"}}}))
    docs = render(helm, check_chart, [*VALUES_FILES["default"], overlay])
    pods = [d for d in of_kind(docs, "Pod") if d["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    assert check_chart.validate_objects(pods, KUBE_VERSIONS[-1:]) == []
    read = {}
    for pod in pods:
        (c,) = pod["spec"]["containers"]
        assert c["command"] == ["preflight-health"]
        target, flag, service = c["args"]
        read[target.split(".")[0]] = service
        assert flag == "--read" and service in READS
        env = {e["name"]: e["value"] for e in c["env"]}
        assert "PREFLIGHT_PROBE_TOKEN" not in env
        token = Path(env["PREFLIGHT_PROBE_TOKEN_FILE"])
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(token.parent)]
        assert mount["readOnly"] is True
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == "preflight-probe"
        assert volume["secret"]["items"] == [{"key": "token", "path": token.name}]
    assert read == {f"preflight-{s}": s for s in SERVICES}


def test_k8s_sandbox_namespace_is_restricted_and_cut_off(helm: str, check_chart: ModuleType) -> None:
    """Production enables Inspect's Kubernetes sandbox: its namespace enforces the restricted Pod
    Security Standard, denies every ingress and egress, and only the workers may manage Pods there."""
    docs = render(helm, check_chart, VALUES_FILES["production"])
    [namespace] = of_kind(docs, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert {labels[f"pod-security.kubernetes.io/{mode}"] for mode in ("enforce", "audit", "warn")} == {
        "restricted"
    }
    sandbox = namespace["metadata"]["name"]
    [policy] = [d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["namespace"] == sandbox]
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    [binding] = [d for d in of_kind(docs, "RoleBinding") if d["metadata"]["namespace"] == sandbox]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "preflight-worker", "namespace": "preflight-benchmarks"}
    ]
    assert not any(d["kind"] == "Namespace" for d in render(helm, check_chart, VALUES_FILES["default"]))


WORKER_POLICY = "preflight-benchmark-worker"


def k8s_sandbox_job(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The worker Job the dispatcher builds from the rendered chart's settings."""
    from preflight_benchmark.adapters.executors.k8s_manifest import build_job
    from preflight_benchmark.config import KubernetesSettings
    from preflight_testkit.benchmark import exploit_attempt

    env = env_of(docs, "preflight-benchmark")
    for name, var in env.items():
        if name.startswith("PREFLIGHT_BENCHMARK_K8S_"):
            monkeypatch.setenv(name, var["value"])
    settings = KubernetesSettings.from_env("benchmark:50052", env["PREFLIGHT_BENCHMARK_LOG_ROOT"]["value"])
    return build_job(exploit_attempt(), settings.manifest)


def test_k8s_sandbox_values_and_namespace_reach_the_worker_jobs_only_when_enabled(
    helm: str, check_chart: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Inspect's Kubernetes sandbox, the worker Jobs mount the sandbox's Helm values (a
    ConfigMap of the job namespace), name its namespace and get a ServiceAccount token, and the
    workers may reach the Kubernetes API; without it, none of these."""
    docs = render(helm, check_chart, VALUES_FILES["production"])
    [namespace] = of_kind(docs, "Namespace")
    job = k8s_sandbox_job(docs, monkeypatch)
    spec = job["spec"]["template"]["spec"]
    [worker] = spec["containers"]
    [token] = [
        m for m in worker["volumeMounts"] if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    ]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}} in next(
        v for v in spec["volumes"] if v["name"] == token["name"]
    )["projected"]["sources"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["INSPECT_K8S_DEFAULT_NAMESPACE"] == namespace["metadata"]["name"]
    values_file = Path(env["PREFLIGHT_WORKER_K8S_SANDBOX_VALUES"])
    [mount] = [m for m in worker["volumeMounts"] if m["mountPath"] == str(values_file.parent)]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    [config_map] = [
        d
        for d in of_kind(docs, "ConfigMap")
        if d["metadata"]["name"] == volume["configMap"]["name"]
        and d["metadata"]["namespace"] == job["metadata"]["namespace"]
    ]
    values = yaml.safe_load(config_map["data"][values_file.name])
    default = values["services"]["default"]
    assert default["image"] == env_of(docs, "preflight-benchmark")["PREFLIGHT_BENCHMARK_K8S_IMAGE"]["value"]
    assert values["automountServiceAccountToken"] is False
    assert values["networkPolicy"] == {"enabled": False}
    # The sandbox Pods pull the (worker) image as every other Pod does.
    assert values["imagePullSecrets"] == [{"name": "registry-credentials"}]
    [workers] = [d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == WORKER_POLICY]
    # The production example's API server endpoint (networkPolicy.egress.kubeAPI).
    assert any({"ipBlock": {"cidr": "10.0.0.1/32"}} in r.get("to", []) for r in workers["spec"]["egress"])

    monkeypatch.delenv("PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE")
    monkeypatch.delenv("PREFLIGHT_BENCHMARK_K8S_SANDBOX_VALUES")
    plain_docs = render(helm, check_chart, VALUES_FILES["default"])
    assert not [d for d in of_kind(plain_docs, "ConfigMap") if d["metadata"]["name"].endswith("-k8s-sandbox")]
    plain = k8s_sandbox_job(plain_docs, monkeypatch)
    plain_spec = plain["spec"]["template"]["spec"]
    assert plain_spec["automountServiceAccountToken"] is False
    assert not [v for v in plain_spec["volumes"] if "projected" in v]
    assert not {"INSPECT_K8S_DEFAULT_NAMESPACE", "PREFLIGHT_WORKER_K8S_SANDBOX_VALUES"} & {
        e["name"] for e in plain_spec["containers"][0]["env"]
    }
    [no_api] = [d for d in of_kind(plain_docs, "NetworkPolicy") if d["metadata"]["name"] == WORKER_POLICY]
    assert 6443 not in {p["port"] for rule in no_api["spec"]["egress"] for p in rule.get("ports", [])}


KUEUE_FLAVORS = [
    {
        "name": "h100",
        "nodeLabels": {"cloud.example/accelerator": "h100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "quota": {"cpu": "64", "memory": "512Gi", "ephemeral-storage": "2Ti", "nvidia.com/gpu": "8"},
    },
    {"name": "cpu", "quota": {"cpu": "32", "memory": "128Gi", "ephemeral-storage": "500Gi"}},
]


def test_kueue_queues_validate_against_kueue_schemas_and_the_local_queue_is_the_jobs(
    helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """benchmark.worker.kueue.create renders ResourceFlavors, a ClusterQueue covering every resource a
    worker pod requests and the LocalQueue the Jobs name, valid against the CRDs Kueue publishes."""
    values = tmp_path / "kueue.yaml"
    kueue = {"enabled": True, "queueName": "preflight-gpu", "create": True, "flavors": KUEUE_FLAVORS}
    values.write_text(
        yaml.safe_dump({"benchmark": {"jobNamespace": "preflight-jobs", "worker": {"kueue": kueue}}})
    )
    docs = render(helm, check_chart, [*VALUES_FILES["default"], values])
    flavors = of_kind(docs, "ResourceFlavor")
    (cluster_queue,) = of_kind(docs, "ClusterQueue")
    (local_queue,) = of_kind(docs, "LocalQueue")
    assert check_chart.validate_objects([*flavors, cluster_queue, local_queue], []) == []
    assert [f["spec"].get("nodeLabels") for f in flavors] == [{"cloud.example/accelerator": "h100"}, None]
    assert local_queue["metadata"] == {
        **local_queue["metadata"],
        "name": "preflight-gpu",
        "namespace": "preflight-jobs",
    }
    assert local_queue["spec"] == {"clusterQueue": cluster_queue["metadata"]["name"]}
    assert cluster_queue["spec"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "preflight-jobs"}
    }
    (group,) = cluster_queue["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", "ephemeral-storage", "nvidia.com/gpu"]
    quota = {f["name"]: {r["name"]: r["nominalQuota"] for r in f["resources"]} for f in group["flavors"]}
    assert quota == {
        "h100": KUEUE_FLAVORS[0]["quota"],
        "cpu": {**KUEUE_FLAVORS[1]["quota"], "nvidia.com/gpu": "0"},
    }
    # The dispatcher names the queue on its Jobs.
    (benchmark,) = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "preflight-benchmark"]
    env = {e["name"]: e.get("value") for e in benchmark["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PREFLIGHT_BENCHMARK_K8S_KUEUE_QUEUE"] == "preflight-gpu"
    assert not {"ResourceFlavor", "ClusterQueue", "LocalQueue"} & {
        d["kind"] for d in render(helm, check_chart, VALUES_FILES["default"])
    }


def test_kueue_crds_refuse_what_kueue_refuses(check_chart: ModuleType) -> None:
    """Kueue's objects are checked against its published CRDs, version by version."""
    local_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "preflight-gpu", "namespace": "preflight"},
        "spec": {"clusterQueue": "preflight-benchmark"},
    }
    assert check_chart.validate_objects([local_queue], []) == []
    assert check_chart.validate_objects(
        [{**local_queue, "spec": {"clusterQueue": "preflight-benchmark", "queue": "x"}}], []
    )
    assert check_chart.validate_objects([{**local_queue, "spec": {"clusterQueue": "Not A Name"}}], [])
    assert check_chart.validate_objects([{**local_queue, "apiVersion": "kueue.x-k8s.io/v1alpha9"}], []) == [
        "LocalQueue/preflight-gpu: apiVersion: kueue.x-k8s.io/v1alpha9 of LocalQueue is not served"
    ]
    cluster_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "preflight-benchmark"},
        "spec": {
            "cohortName": "research",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu"],
                    "flavors": [{"name": "cpu", "resources": [{"name": "cpu", "nominalQuota": "64"}]}],
                }
            ],
        },
    }
    assert check_chart.validate_objects([cluster_queue], []) == []
    quota = yaml.safe_load(yaml.safe_dump(cluster_queue))
    quota["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] = "lots"
    # v1beta2 renamed v1beta1's `cohort`: each version takes only its own name.
    old_name = {**cluster_queue, "spec": {**cluster_queue["spec"], "cohort": "research"}}
    new_name_in_v1beta1 = {**cluster_queue, "apiVersion": "kueue.x-k8s.io/v1beta1"}
    for bad in (quota, old_name, new_name_in_v1beta1):
        assert check_chart.validate_objects([bad], []), bad


AGENCY = "https://login.agency.example"
OIDC_VALUES = {
    "console": {
        "oidc": {
            "issuer": AGENCY,
            "clientId": "preflight-console",
            "redirectUrl": "https://console.agency.example/sign-in/oidc/callback",
            "scopes": "openid email groups",
            "name": "the agency's sign-in",
            "clientSecret": {"existingSecret": "console-oidc", "key": "secret"},
        }
    },
    "intake": {
        "oidc": {
            "tokenLifetime": 3600,
            "issuers": [
                {
                    "issuer": AGENCY,
                    "audiences": ["preflight-console"],
                    "principals": [
                        {
                            "claim": "sub",
                            "value": "248289761001",
                            "principal_id": "rita",
                            "role": "reviewer",
                            "organisation": "agency",
                        },
                        {
                            "claim": "email",
                            "value": "ops@hospital.example",
                            "role": "operator",
                            "organisation": "st-marys",
                            "sectors": ["healthcare"],
                        },
                    ],
                }
            ],
        }
    },
}


def test_oidc_settings_render_to_what_the_console_and_intake_read(
    helm: str, check_chart: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preflight_console.config import OidcSettings
    from preflight_intake.domain.federation import Federation

    values = tmp_path / "oidc.yaml"
    values.write_text(yaml.safe_dump(OIDC_VALUES))
    docs = render(helm, check_chart, [REQUIRED_VALUES, values])
    # intake reads the mapping the chart renders (its own parser) from the file its variable names.
    mapping = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "preflight-intake-oidc")
    federation = Federation.parse(mapping["data"]["oidc.yaml"])
    assert list(federation.issuers) == [AGENCY]
    intake = env_of(docs, "preflight-intake")
    assert intake["PREFLIGHT_INTAKE_OIDC_FILE"]["value"] == "/etc/preflight/oidc/oidc.yaml"
    assert intake["PREFLIGHT_INTAKE_OIDC_TOKEN_LIFETIME"]["value"] == "3600"
    # The console's settings from exactly its rendered environment, the secret's file stood in for.
    secret = tmp_path / "client-secret"
    secret.write_text("s" * 40)
    secret.chmod(0o440)
    for name, variable in env_of(docs, CONSOLE).items():
        if name.startswith("PREFLIGHT_CONSOLE_OIDC_"):
            monkeypatch.setenv(name, variable["value"])
    rendered_file = os.environ["PREFLIGHT_CONSOLE_OIDC_CLIENT_SECRET_FILE"]
    monkeypatch.setenv("PREFLIGHT_CONSOLE_OIDC_CLIENT_SECRET_FILE", str(secret))
    assert OidcSettings.from_env() == OidcSettings(
        issuer=AGENCY,
        client_id="preflight-console",
        client_secret="s" * 40,
        scopes="openid email groups",
        name="the agency's sign-in",
        redirect_url="https://console.agency.example/sign-in/oidc/callback",
    )
    # That file is the Secret's key, mounted read-only; the Secret is named nowhere else.
    console = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == CONSOLE)
    pod = console["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "oidc-client-secret")
    assert (mount["mountPath"], mount["readOnly"]) == (os.path.dirname(rendered_file), True)
    volume = next(v for v in pod["volumes"] if v["name"] == "oidc-client-secret")
    assert volume["secret"]["items"] == [{"key": "secret", "path": os.path.basename(rendered_file)}]
    assert "console-oidc" not in yaml.safe_dump(pod["containers"])


def test_the_csaf_signing_key_renders_to_the_file_the_console_reads(
    helm: str, check_chart: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Secret's key is mounted read-only where PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY_FILE points,
    the console's settings take it from exactly the rendered environment, and the key is in no
    environment variable or argument."""
    from preflight_console.config import Settings

    values = tmp_path / "csaf.yaml"
    key_values = {"openpgpKey": {"existingSecret": "console-csaf", "key": "k.asc"}}
    values.write_text(yaml.safe_dump({"console": {"csaf": key_values}}))
    docs = render(helm, check_chart, [REQUIRED_VALUES, values])
    rendered_file = env_of(docs, CONSOLE)["PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY_FILE"]["value"]
    console = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == CONSOLE)
    pod = console["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "csaf-openpgp-key")
    assert (mount["mountPath"], mount["readOnly"]) == (os.path.dirname(rendered_file), True)
    volume = next(v for v in pod["volumes"] if v["name"] == "csaf-openpgp-key")
    assert volume["secret"]["secretName"] == "console-csaf"
    assert volume["secret"]["items"] == [{"key": "k.asc", "path": os.path.basename(rendered_file)}]
    assert "console-csaf" not in yaml.safe_dump(pod["containers"])
    key = tmp_path / "csaf" / os.path.basename(rendered_file)
    key.parent.mkdir()
    key.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")
    monkeypatch.setenv("PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY_FILE", str(key))
    assert Settings.from_env().csaf_openpgp_key_file == key
    # Without a Secret, nothing is signed: no variable, no volume.
    default = render(helm, check_chart, [REQUIRED_VALUES])
    assert "PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY_FILE" not in env_of(default, CONSOLE)


def _image_values(values: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Every image value (a mapping with a `repository`) in `values`, by its dotted path."""
    if not isinstance(values, dict):
        return {}
    if "repository" in values:
        return {path: values}
    found: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        found.update(_image_values(value, f"{path}.{key}" if path else key))
    return found


def _container_images(node: Any) -> list[str]:
    """The image of every container and init container anywhere in `node`."""
    if isinstance(node, list):
        return [image for item in node for image in _container_images(item)]
    if not isinstance(node, dict):
        return []
    found = [c["image"] for key in ("containers", "initContainers") for c in node.get(key, [])]
    return found + [image for value in node.values() for image in _container_images(value)]


def test_every_image_value_takes_a_digest_and_every_container_is_then_pinned(
    helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """Each of the project's image values has an optional `digest`; with all of them set, every
    container the chart renders (Deployments, hook Jobs, helm tests) and the worker image the
    dispatcher puts in its Jobs are `repo@sha256:…`, whatever the tags say."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    images = _image_values(defaults)
    assert {"intake.image", "benchmark.worker.image", "console.image"} <= set(images), images
    assert all(image.get("digest") == "" for image in images.values()), images
    digests: dict[str, Any] = {}
    for n, path in enumerate(sorted(images)):
        node = digests
        for key in path.split("."):
            node = node.setdefault(key, {})
        node["digest"] = f"sha256:{n:064x}"
    values = tmp_path / "digests.yaml"
    values.write_text(yaml.safe_dump({**digests, "image": {"tag": "9.9.9"}}))
    docs = render(helm, check_chart, [*VALUES_FILES["production"], values])
    rendered = _container_images(docs)
    assert rendered
    worker = env_of(docs, "preflight-benchmark")["PREFLIGHT_BENCHMARK_K8S_IMAGE"]["value"]
    for image in [*rendered, worker]:
        assert re.fullmatch(r"\S+@sha256:[0-9a-f]{64}", image) and ":9.9.9" not in image, image
    assert worker.endswith(f"@sha256:{sorted(images).index('benchmark.worker.image'):064x}")
