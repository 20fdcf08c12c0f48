#!/usr/bin/env python3
"""Render the Preflight chart and validate every manifest.

For the default values and each file in examples/: `helm template` the chart
and validate every rendered object (hooks included) with kubernetes-validate
in strict mode, for each requested Kubernetes version; Strimzi's KafkaTopics
and KafkaUsers against our schemas of Strimzi's v1 API in crds/ (unknown fields
refused, as the API server's strict field validation does). Then check that
values breaking values.schema.json (or the chart's own checks) fail to render.

    check_chart.py --helm .cache/bin/helm --kube-versions "1.34.0 1.35.0" deploy/helm/preflight

Exit status 0 when everything passes. The functions are imported by
tests/deploy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# Custom resources we render but have no schema for.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

CRDS = Path(__file__).resolve().parent / "crds"
# Custom resources validated against our schema of their API (crds/README.md): Strimzi publishes
# its CRDs in no package this build can fetch.
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): CRDS / "kafkatopic-v1.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): CRDS / "kafkauser-v1.json",
}
# Custom resources validated against their projects' published CRDs, fetched by fetch_crds.py.
PUBLISHED_CRDS = Path(__file__).resolve().parents[3] / ".cache" / "crds"
PUBLISHED_CRD_FILES = {
    ("kueue.x-k8s.io", "ResourceFlavor"): "kueue.x-k8s.io_resourceflavors.yaml",
    ("kueue.x-k8s.io", "ClusterQueue"): "kueue.x-k8s.io_clusterqueues.yaml",
    ("kueue.x-k8s.io", "LocalQueue"): "kueue.x-k8s.io_localqueues.yaml",
    ("gateway.networking.k8s.io", "GRPCRoute"): "gateway.networking.k8s.io_grpcroutes.yaml",
}

# The values the chart requires and has no default for: "default" renders add them.
REQUIRED_VALUES = Path(__file__).resolve().parent / "required-values.yaml"
RELEASE = "preflight"
NAMESPACE = "preflight"

# A valid entry of intake's OpenID Connect mapping, which the bad values below each break once.
OIDC_RULE = {"claim": "sub", "value": "rita", "role": "reviewer", "organisation": "agency"}
OIDC_ISSUER = {
    "issuer": "https://login.example",
    "audiences": ["preflight-console"],
    "principals": [OIDC_RULE],
}

# Values that must NOT render: (description, values overlay).
BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("unknown top-level key", {"replicas": 3}),
    ("unknown component key", {"intake": {"replicas": 3}}),
    ("bad security protocol", {"kafka": {"securityProtocol": "TLS"}}),
    ("bootstrap without port", {"kafka": {"bootstrapServers": "kafka.kafka.svc"}}),
    ("port out of range", {"intake": {"grpcPort": 70000}}),
    ("negative replicas", {"notifier": {"replicaCount": -1}}),
    ("replicas as string", {"clearinghouse": {"replicaCount": "two"}}),
    ("bad executor", {"benchmark": {"executor": "docker"}}),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}),
    ("bad digest", {"intake": {"image": {"digest": "md5:abc"}}}),
    ("bad quantity", {"intake": {"resources": {"limits": {"memory": "lots"}}}}),
    ("root allowed", {"podSecurityContext": {"runAsNonRoot": False}}),
    ("privilege escalation", {"containerSecurityContext": {"allowPrivilegeEscalation": True}}),
    ("capabilities not dropped", {"containerSecurityContext": {"capabilities": {"drop": []}}}),
    (
        "bad toleration operator",
        {"benchmark": {"worker": {"tolerations": [{"key": "a", "operator": "Maybe"}]}}},
    ),
    ("zero vLLM GPUs", {"benchmark": {"worker": {"weights": {"gpus": 0}}}}),
    ("bad job namespace", {"benchmark": {"jobNamespace": "Bad_Namespace"}}),
    ("catalog as a map", {"benchmark": {"catalog": {"suites": []}}}),
    ("bad smtp security", {"notifier": {"smtp": {"security": "ssl"}}}),
    ("bad webhook secret variable", {"notifier": {"webhookSecrets": {"bank-a": "webhook-bank-a"}}}),
    ("zero concurrency", {"benchmark": {"maxConcurrency": 0}}),
    ("bad topic name", {"kafka": {"topics": {"names": {"alerts": "alerts topic"}}}}),
    ("bad otlp endpoint", {"telemetry": {"otlpEndpoint": "otel:4317"}}),
    ("egress rule without ports", {"networkPolicy": {"egress": {"kafka": {"to": [], "ports": []}}}}),
    ("empty peer", {"networkPolicy": {"ingress": {"intake": [{}]}}}),
    (
        "sasl without username",
        {"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"passwordSecret": {"name": "kafka-user"}}}},
    ),
    ("sasl without password secret", {"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"username": "u"}}}),
    ("servicemonitor without metrics", {"telemetry": {"serviceMonitor": {"enabled": True}}}),
    ("kueue without queue", {"benchmark": {"worker": {"kueue": {"enabled": True}}}}),
    ("plaintext Kafka", {"kafka": {"securityProtocol": "PLAINTEXT"}}),
    (
        "mutual TLS with a shared password Secret",
        {"kafka": {"securityProtocol": "SSL", "auth": {"existingSecret": "k"}}},
    ),
    (
        "mutual TLS with a service's password Secret",
        {
            "kafka": {"securityProtocol": "SSL"},
            "intake": {"kafkaCredentials": {"passwordSecret": {"name": "k"}}},
        },
    ),
    (
        "mutual TLS with SCRAM credentials to provision",
        {"kafka": {"securityProtocol": "SSL", "provisioning": {"credentials": True}}},
    ),
    (
        "mutual TLS with an administrator's SASL mechanism",
        {"kafka": {"securityProtocol": "SSL", "provisioning": {"admin": {"mechanism": "SCRAM-SHA-512"}}}},
    ),
    (
        "client certificate over SASL",
        {"notifier": {"kafkaCredentials": {"certificateSecret": {"name": "notifier-tls"}}}},
    ),
    (
        "administrator's client certificate over SASL",
        {"kafka": {"provisioning": {"admin": {"certificateSecret": {"name": "admin-tls"}}}}},
    ),
    ("client certificate without a key", {"kafka": {"tls": {"clientCertificate": {"privateKeyKey": ""}}}}),
    (
        "PLAIN password in clear",
        {"kafka": {"securityProtocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "PLAIN"}}},
    ),
    (
        "admin PLAIN password in clear",
        {
            "kafka": {
                "securityProtocol": "SASL_PLAINTEXT",
                "provisioning": {"admin": {"mechanism": "PLAIN"}},
            }
        },
    ),
    ("Kafka password in values", {"kafka": {"sasl": {"password": "s3cret"}}}),
    ("strimzi without cluster", {"kafka": {"strimzi": {"enabled": True}}}),
    (
        "strimzi with SCRAM-SHA-256",
        {"kafka": {"strimzi": {"enabled": True, "cluster": "c"}, "sasl": {"mechanism": "SCRAM-SHA-256"}}},
    ),
    ("bad organisation name", {"participants": [{"name": "Bank_A"}]}),
    ("bad sector name", {"participants": [{"name": "bank-a", "sectors": ["-finance"]}]}),
    ("organisation twice", {"participants": [{"name": "bank-a"}, {"name": "bank-a"}]}),
    ("ACLs for another user name", {"intake": {"kafkaCredentials": {"username": "intake"}}}),
    ("credentials without a shared Secret", {"kafka": {"provisioning": {"credentials": True}}}),
    (
        "service Secret overwritten by Strimzi",
        {"kafka": {"strimzi": {"enabled": True, "cluster": "c"}}},
    ),
    ("no intake and no identity target", {"intake": {"enabled": False}}),
    (
        "worker eval logs on the pod's own disk",
        {"benchmark": {"evalLogs": {"root": "/var/lib/preflight/eval-logs"}}},
    ),
    ("worker eval logs nowhere", {"benchmark": {"evalLogs": {"root": ""}}}),
    (
        "eval-log claim at a relative path",
        {"benchmark": {"evalLogs": {"root": "logs", "persistentVolumeClaim": "l"}}},
    ),
    ("bad scratch size", {"benchmark": {"worker": {"scratchSizeLimit": "lots"}}}),
    ("bad runtime class", {"benchmark": {"worker": {"runtimeClassName": "gVisor"}}}),
    ("pull secret without a name", {"global": {"imagePullSecrets": [{"secret": "x"}]}}),
    ("OpenID issuer over http", {"console": {"oidc": {"issuer": "http://login.example", "clientId": "c"}}}),
    ("OpenID issuer without a client id", {"console": {"oidc": {"issuer": "https://login.example"}}}),
    ("redirect URL off the callback", {"console": {"oidc": {"redirectUrl": "https://console.example/x"}}}),
    ("scopes without openid", {"console": {"oidc": {"scopes": "email profile"}}}),
    ("client secret in values", {"console": {"oidc": {"clientSecret": {"value": "s3cret"}}}}),
    *(
        (f"OpenID mapping: {what}", {"intake": {"oidc": {"issuers": [issuer]}}})
        for what, issuer in [
            ("issuer over http", {**OIDC_ISSUER, "issuer": "http://login.example"}),
            ("no audience", {**OIDC_ISSUER, "audiences": []}),
            ("no rule", {**OIDC_ISSUER, "principals": []}),
            ("an admin", {**OIDC_ISSUER, "principals": [{**OIDC_RULE, "role": "admin"}]}),
            ("an unknown claim", {**OIDC_ISSUER, "principals": [{**OIDC_RULE, "claim": "name"}]}),
            ("a bad organisation", {**OIDC_ISSUER, "principals": [{**OIDC_RULE, "organisation": "Agency"}]}),
        ]
    ),
    (
        "OpenID mapping inline and from a ConfigMap",
        {"intake": {"oidc": {"issuers": [OIDC_ISSUER], "existingConfigMap": "agency-oidc"}}},
    ),
]


def render(
    helm: str,
    chart: Path,
    values_files: Iterable[Path] = (),
    *,
    namespace: str = NAMESPACE,
    extra_args: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    cmd = [helm, "template", RELEASE, str(chart), "--namespace", namespace]
    for f in values_files:
        cmd += ["-f", str(f)]
    cmd += list(extra_args)
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def documents(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


@cache  # one read of each schema, however many resources of its kind are rendered
def crd_validator(path: Path) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(path.read_text()))


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural OpenAPI v3 schema as a draft-7 JSON Schema that refuses unknown fields.

    The API server's strict field validation refuses a field its schema does not declare (unless
    `x-kubernetes-preserve-unknown-fields`); `x-kubernetes-int-or-string` admits either type and
    `nullable` admits null. The CRD's CEL rules (`x-kubernetes-validations`) are not evaluated
    here: the cluster tests create the objects on a real API server, which does.
    """
    out: dict[str, Any] = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if "properties" in out:
        out["properties"] = {name: strict_schema(sub) for name, sub in out["properties"].items()}
        if "additionalProperties" not in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = strict_schema(out["items"])
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in schema:
            out[combinator] = [strict_schema(sub) for sub in schema[combinator]] + out.get(combinator, [])
    return out


@cache
def published_crd_validator(group: str, kind: str, version: str) -> jsonschema.Draft7Validator | None:
    """The validator of `version` of the published CRD of `kind`, or None where it is not served."""
    path = PUBLISHED_CRDS / PUBLISHED_CRD_FILES[(group, kind)]
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `make deploy-tools` (deploy/helm/tools/fetch_crds.py)")
    crd = yaml.safe_load(path.read_text())
    for served in crd["spec"]["versions"]:
        if served["name"] == version and served.get("served"):
            return jsonschema.Draft7Validator(strict_schema(served["schema"]["openAPIV3Schema"]))
    return None


def custom_resource_validator(obj: dict[str, Any]) -> jsonschema.Draft7Validator | None:
    """The validator of a custom resource's apiVersion and kind (None: not a version served)."""
    api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
    group, _, version = api_version.rpartition("/")
    if (group, kind) in PUBLISHED_CRD_FILES:
        return published_crd_validator(group, kind, version)
    return crd_validator(CRD_SCHEMAS[(api_version, kind)])


def is_custom_resource(obj: dict[str, Any]) -> bool:
    api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
    return (api_version, kind) in CRD_SCHEMAS or (api_version.rpartition("/")[0], kind) in PUBLISHED_CRD_FILES


def validate_custom_resource(obj: dict[str, Any]) -> list[str]:
    """Errors of a custom resource against its CRD or our schema (plus a valid object name)."""
    validator = custom_resource_validator(obj)
    if validator is None:
        return [f"apiVersion: {obj.get('apiVersion')} of {obj.get('kind')} is not served"]
    errors = [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    name = obj.get("metadata", {}).get("name", "")
    if not (len(name) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)):
        errors.append(f"metadata.name: {name!r} is not a DNS subdomain")
    return errors


def validate_objects(objs: list[dict[str, Any]], versions: Iterable[str]) -> list[str]:
    """Strictly validate every object for every version; returns error lines."""
    errors: list[str] = []
    items = [(f"{o.get('kind')}/{o.get('metadata', {}).get('name')}", o) for o in objs]
    for label, obj in items:
        if is_custom_resource(obj):
            errors += [f"{label}: {e}" for e in validate_custom_resource(obj)]
    for version in versions:
        for label, obj in items:
            if (obj.get("apiVersion"), obj.get("kind")) in CRD_KINDS or is_custom_resource(obj):
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                errors.append(f"{version} {label}: {path}: {e.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                errors.append(f"{version} {label}: {e}")
    return errors


def values_sets(chart: Path) -> list[tuple[str, list[Path]]]:
    examples = [(f.stem, [f]) for f in sorted((chart / "examples").glob("*.yaml"))]
    return [("default", [REQUIRED_VALUES]), *examples]


def check_bad_values(helm: str, chart: Path) -> list[str]:
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (what, overlay) in enumerate(BAD_VALUES):
            f = Path(tmp) / f"bad-{i}.yaml"
            f.write_text(yaml.safe_dump(overlay))
            res = render(helm, chart, [REQUIRED_VALUES, f])
            if res.returncode == 0:
                errors.append(f"bad values rendered without error: {what}: {overlay}")
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--helm", default="helm")
    ap.add_argument("--kube-versions", default="1.34.0 1.35.0 1.36.0 1.37.0")
    ap.add_argument("chart", type=Path)
    args = ap.parse_args(argv)
    versions = args.kube_versions.split()
    failed = False
    for name, files in values_sets(args.chart):
        res = render(args.helm, args.chart, files)
        if res.returncode != 0:
            print(f"FAIL render {name}:\n{res.stderr}", file=sys.stderr)
            failed = True
            continue
        objs = documents(res.stdout)
        errs = validate_objects(objs, versions)
        for e in errs:
            print(f"FAIL {name}: {e}", file=sys.stderr)
        failed |= bool(errs)
        print(
            f"{'FAIL' if errs else 'ok  '} {name}: {len(objs)} objects x {len(versions)} Kubernetes versions"
        )
    errs = check_bad_values(args.helm, args.chart)
    for e in errs:
        print(f"FAIL {e}", file=sys.stderr)
    failed |= bool(errs)
    print(f"{'FAIL' if errs else 'ok  '} {len(BAD_VALUES)} bad values sets refused")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
