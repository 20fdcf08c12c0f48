#!/usr/bin/env python3
"""Generate deploy/helm/preflight/values.schema.json (JSON Schema 2020-12).

The schema is written here in Python because most of it repeats per service.
Edit this file, then run it; a test checks the committed JSON is current:

    deploy/helm/tools/gen_schema.py > deploy/helm/preflight/values.schema.json
"""

from __future__ import annotations

import json
from typing import Any


def obj(
    props: dict[str, Any],
    required: list[str] | None = None,
    *,
    additional: bool = False,
    keywords: dict[str, Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "object", "additionalProperties": additional, "properties": props}
    if required:
        d["required"] = required
    d.update(keywords or {}, **kw)
    return d


string = {"type": "string"}
boolean = {"type": "boolean"}


# Secret keys a deployment may leave empty (the service then runs without that secret).
OPTIONAL_SECRETS = ("pageTokenKey", "smtpPassword")


def ref(n: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{n}"}


# A Kubernetes extended resource name, such as nvidia.com/gpu.
EXTENDED_RESOURCE = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
# The benchmark's accelerator classes, by name (a DNS label, as the catalog names them).
ACCELERATORS = {
    "type": "object",
    "description": "Accelerator classes suites name in the catalog (`accelerator`), by class name.",
    "propertyNames": {"pattern": r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
    "additionalProperties": obj(
        {
            "resourceName": {"type": "string", "pattern": EXTENDED_RESOURCE},
            "nodeSelector": ref("stringMap"),
            "tolerations": ref("tolerations"),
            "runtimeClassName": {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"},
        },
        required=["resourceName"],
    ),
}


PROBE_SETTINGS = {
    "periodSeconds": {"type": "integer", "minimum": 1},
    "timeoutSeconds": {"type": "integer", "minimum": 1},
    "failureThreshold": {"type": "integer", "minimum": 1},
}


# A Secret name that must be left empty (the setting it belongs to is not in use).
EMPTY_NAME = {"properties": {"name": {"maxLength": 0}}}


# An OpenID provider's issuer URL, as both the console and intake require it in a cluster: https.
OIDC_ISSUER = r"https://[^\s/?#@]+(/[^\s?#]*)?"

# intake's OpenID Connect mapping (services/intake domain/federation.py), checked before install.
oidc_issuers = {
    "type": "array",
    "items": obj(
        {
            "issuer": {"type": "string", "pattern": f"^{OIDC_ISSUER}$"},
            "audiences": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            "principals": {
                "type": "array",
                "minItems": 1,
                "items": obj(
                    {
                        "claim": {"enum": ["sub", "email", "groups"]},
                        "value": {"type": "string", "minLength": 1},
                        "principal_id": {"type": "string", "pattern": r"^\S{1,256}$"},
                        # People only: admin, service and worker tokens are never issued this way.
                        "role": {"enum": ["lab", "reviewer", "operator"]},
                        "organisation": ref("participantName"),
                        "sectors": {"type": "array", "items": ref("participantName")},
                    },
                    required=["claim", "value", "role", "organisation"],
                ),
            },
        },
        required=["issuer", "audiences", "principals"],
    ),
}


defs = {
    "quantity": {
        "anyOf": [
            {
                "type": "string",
                "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munkMGTPE])?$",
            },
            {"type": "number", "minimum": 0},
        ]
    },
    "resources": obj(
        {
            "requests": {"type": "object", "additionalProperties": ref("quantity")},
            "limits": {"type": "object", "additionalProperties": ref("quantity")},
            "claims": {"type": "array"},
        },
        description="core/v1 ResourceRequirements",
    ),
    "stringMap": {"type": "object", "additionalProperties": {"type": "string"}},
    "dnsLabel": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    "optionalName": {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$", "maxLength": 253},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "envList": {
        "type": "array",
        "items": obj(
            {"name": {"type": "string", "minLength": 1}, "value": string, "valueFrom": {"type": "object"}},
            required=["name"],
        ),
    },
    "image": obj(
        {
            "repository": {"type": "string", "minLength": 1},
            "tag": {"type": "string", "pattern": r"^([\w][\w.-]{0,127})?$"},
            "digest": {"type": "string", "pattern": r"^(sha256:[a-f0-9]{64})?$"},
        },
        required=["repository"],
    ),
    "peers": {
        "type": "array",
        "items": obj(
            {
                "ipBlock": obj(
                    {"cidr": string, "except": {"type": "array", "items": string}}, required=["cidr"]
                ),
                "namespaceSelector": {"type": "object"},
                "podSelector": {"type": "object"},
            },
            minProperties=1,
        ),
    },
    "ports": {
        "type": "array",
        "minItems": 1,
        "items": obj(
            {
                "port": {"anyOf": [ref("port"), {"type": "string", "minLength": 1}]},
                "endPort": ref("port"),
                "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
            },
            required=["port"],
        ),
    },
    "egress": obj({"to": ref("peers"), "ports": ref("ports")}, required=["to", "ports"]),
    "tolerations": {
        "type": "array",
        "items": obj(
            {
                "key": string,
                "operator": {"enum": ["Exists", "Equal"]},
                "value": string,
                "effect": {"enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
                "tolerationSeconds": {"type": "integer"},
            }
        ),
    },
    "secretKeyName": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]+$"},
    # An optional secret: empty leaves it unset (its _FILE variable is not set, nothing is mounted).
    "optionalSecretKeyName": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]*$"},
    # Organisation and sector names: the one grammar of preflight.sdk.naming.
    "participantName": {"type": "string", "pattern": r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"},
    "kafkaCredentials": obj(
        {
            "username": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
            "passwordSecret": obj(
                {"name": ref("optionalName"), "key": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]*$"}},
                required=["name", "key"],
            ),
            "certificateSecret": obj({"name": ref("optionalName")}, required=["name"]),
        },
        required=["username", "passwordSecret", "certificateSecret"],
    ),
    "autoscaling": obj(
        {
            "enabled": boolean,
            "minReplicas": {"type": "integer", "minimum": 1},
            "maxReplicas": {"type": "integer", "minimum": 1},
            "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        required=["enabled", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"],
    ),
    "pdb": obj(
        {
            "enabled": boolean,
            "maxUnavailable": {
                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+%$"}]
            },
        },
        required=["enabled", "maxUnavailable"],
    ),
    "service": obj(
        {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "annotations": ref("stringMap")},
        required=["type"],
    ),
    "migrations": obj(
        {"enabled": boolean, "args": {"type": "array", "items": string, "minItems": 1}},
        required=["enabled", "args"],
    ),
    "probe": obj(PROBE_SETTINGS, required=list(PROBE_SETTINGS)),
    # A service's overrides of the global probes: any of their settings.
    "probeOverride": obj(PROBE_SETTINGS),
    # A pod volume: any source but the node's file system.
    "extraVolume": {"type": "object", "required": ["name"], "not": {"required": ["hostPath"]}},
    "extraVolumeMount": {"type": "object", "required": ["name", "mountPath"]},
}


def component(secret_keys: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {
        "enabled": boolean,
        "replicaCount": {"type": "integer", "minimum": 0},
        "image": ref("image"),
        "grpcPort": ref("port"),
        "service": ref("service"),
        "existingSecret": ref("optionalName"),
        "secretKeys": obj(
            {
                k: ref("optionalSecretKeyName" if k in OPTIONAL_SECRETS else "secretKeyName")
                for k in secret_keys
            },
            required=secret_keys,
        ),
        "migrations": ref("migrations"),
        "extraEnv": ref("envList"),
        "kafkaCredentials": ref("kafkaCredentials"),
        "resources": ref("resources"),
        "autoscaling": ref("autoscaling"),
        "podDisruptionBudget": ref("pdb"),
        "podAnnotations": ref("stringMap"),
        "podLabels": ref("stringMap"),
        "nodeSelector": ref("stringMap"),
        "tolerations": ref("tolerations"),
        "affinity": {"type": "object"},
        "topologySpreadConstraints": {
            "type": "array",
            "items": {"type": "object", "required": ["maxSkew", "topologyKey", "whenUnsatisfiable"]},
        },
        "priorityClassName": string,
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
        "serviceAccount": obj({"create": boolean, "name": ref("optionalName")}, required=["create"]),
        "updateStrategy": obj(
            {"type": {"enum": ["RollingUpdate", "Recreate"]}, "rollingUpdate": {"type": "object"}},
            required=["type"],
        ),
        "probes": obj({p: ref("probeOverride") for p in ("liveness", "readiness", "startup")}),
        "extraVolumes": {"type": "array", "items": ref("extraVolume")},
        "extraVolumeMounts": {"type": "array", "items": ref("extraVolumeMount")},
    }
    props.update(extra or {})
    return obj(props, required=["enabled", "replicaCount", "image", "grpcPort", "secretKeys", "resources"])


worker = obj(
    {
        "image": ref("image"),
        "nodeSelector": ref("stringMap"),
        "tolerations": ref("tolerations"),
        "gpuNodeSelector": ref("stringMap"),
        "gpuTolerations": ref("tolerations"),
        "podAnnotations": ref("stringMap"),
        "weights": obj(
            {
                # A third-party image reference, pinned by digest when the operator has verified one.
                "vllmImage": {"type": "string", "pattern": r"^([^\s@]+(@sha256:[a-f0-9]{64})?)?$"},
                "gpus": {"type": "integer", "minimum": 1},
                "storage": {"type": "string", "pattern": r"^\d+(\.\d+)?([KMGT]i|[kMGT])?$"},
                "shmSize": {"type": "string", "pattern": r"^\d+(\.\d+)?([KMGT]i|[kMGT])?$"},
                "mirrorClaim": ref("optionalName"),
                "existingSecret": ref("optionalName"),
                "env": {"type": "object", "additionalProperties": string},
            },
            required=["gpus", "storage", "shmSize"],
        ),
        "backoffLimit": {"type": "integer", "minimum": 0},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "scratchSizeLimit": {"type": "string", "pattern": r"^\d+(\.\d+)?([KMGT]i|[kMGT])?$"},
        "runtimeClassName": ref("optionalName"),
        "priorityClassName": ref("optionalName"),
        "k8sSandbox": obj(
            {
                "enabled": boolean,
                "namespace": ref("optionalName"),
                "image": {"type": "string", "pattern": r"^\S*$"},
                "runtimeClassName": ref("optionalName"),
                "resources": ref("resources"),
                "workdirSizeLimit": ref("quantity"),
                "corednsImage": {"type": "string", "pattern": r"^\S*$"},
                "ciliumNetworkPolicy": boolean,
            },
            required=["enabled", "resources", "workdirSizeLimit", "ciliumNetworkPolicy"],
        ),
        "kueue": obj(
            {
                "enabled": boolean,
                "queueName": string,
                "create": boolean,
                "apiVersion": {"enum": ["kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1"]},
                "clusterQueue": ref("optionalName"),
                "cohort": ref("optionalName"),
                "flavors": {
                    "type": "array",
                    "items": obj(
                        {
                            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                            "nodeLabels": {"type": "object", "additionalProperties": string},
                            "tolerations": {"type": "array", "items": {"type": "object"}},
                            "quota": obj(
                                {
                                    name: {"type": "string", "pattern": r"^\d+(\.\d+)?(m|[KMGT]i|[kMGT])?$"}
                                    for name in ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu")
                                },
                                patternProperties={
                                    EXTENDED_RESOURCE: {
                                        "type": "string",
                                        "pattern": r"^\d+$",
                                        "description": "GPUs of an accelerator class's resourceName.",
                                    }
                                },
                            ),
                        },
                        required=["name"],
                    ),
                },
            },
            required=["enabled"],
        ),
    },
    required=["image", "k8sSandbox", "kueue", "weights", "scratchSizeLimit"],
)

eval_logs = obj(
    {
        # s3:// or gs:// URLs, an absolute mount path, or empty (the local executor's default).
        "root": {"type": "string", "pattern": r"^((s3|gs)://[^/\s]+(/\S*)?|/\S*)?$"},
        "persistentVolumeClaim": ref("optionalName"),
        "existingSecret": ref("optionalName"),
        "env": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "not": {"pattern": "^PREFLIGHT_"}},
            "additionalProperties": {"type": "string"},
        },
        "serviceAccountAnnotations": ref("stringMap"),
    },
    required=["root"],
)

image_pull_secret = {"anyOf": [ref("dnsLabel"), obj({"name": ref("dnsLabel")}, required=["name"])]}

yaml_doc = {"type": "string", "description": "A YAML document; empty uses the chart's files/ default."}

schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://preflight.invalid/charts/preflight/values.schema.json",
    "title": "Preflight Helm chart values",
    "type": "object",
    "additionalProperties": False,
    "$defs": defs,
    "required": ["image", "kafka", "intake", "benchmark", "clearinghouse", "notifier", "networkPolicy"],
    "properties": {
        "global": obj(
            {"imageRegistry": string, "imagePullSecrets": {"type": "array", "items": image_pull_secret}},
            additional=True,
            description="Shared with parent charts: the keys below are read, others are theirs.",
        ),
        "nameOverride": {"type": "string", "maxLength": 40},
        "fullnameOverride": {"type": "string", "maxLength": 40},
        "commonLabels": ref("stringMap"),
        "image": obj(
            {
                "registry": string,
                "tag": {"type": "string", "pattern": r"^([\w][\w.-]{0,127})?$"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "pullSecrets": {"type": "array", "items": ref("dnsLabel")},
            },
            required=["registry", "pullPolicy"],
        ),
        "kafka": obj(
            {
                "bootstrapServers": {"type": "string", "pattern": r"^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$"},
                # Every client authenticates (SSL: by its client certificate): the brokers grant
                # nothing to an anonymous one.
                "securityProtocol": {"enum": ["SASL_SSL", "SSL", "SASL_PLAINTEXT"]},
                "sasl": obj(
                    {"mechanism": {"enum": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]}},
                    required=["mechanism"],
                ),
                "auth": obj({"existingSecret": ref("optionalName")}, required=["existingSecret"]),
                "strimzi": obj(
                    {
                        "enabled": boolean,
                        "cluster": ref("optionalName"),
                        "namespace": ref("optionalName"),
                        "userSecretAnnotations": ref("stringMap"),
                    },
                    required=["enabled", "cluster"],
                    # The cluster label is what makes Strimzi's operators pick the resources up.
                    keywords={
                        "if": {"properties": {"enabled": {"const": True}}},
                        "then": {"properties": {"cluster": {"minLength": 1}}},
                    },
                ),
                "tls": obj(
                    {
                        "caSecret": obj(
                            {"name": ref("optionalName"), "key": ref("secretKeyName")},
                            required=["name", "key"],
                        ),
                        "clientCertificate": obj(
                            {"certificateKey": ref("secretKeyName"), "privateKeyKey": ref("secretKeyName")},
                            required=["certificateKey", "privateKeyKey"],
                        ),
                    },
                    required=["caSecret", "clientCertificate"],
                ),
                "topics": obj(
                    {
                        "names": obj(
                            {
                                k: {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"}
                                for k in [
                                    "submissions",
                                    "benchmarkJobs",
                                    "benchmarkResults",
                                    "reviews",
                                    "findings",
                                    "alertsPrefix",
                                    "reviewAlerts",
                                    "auditCheckpoints",
                                ]
                            },
                            required=[
                                "submissions",
                                "benchmarkJobs",
                                "benchmarkResults",
                                "reviews",
                                "findings",
                                "alertsPrefix",
                                "reviewAlerts",
                                "auditCheckpoints",
                            ],
                        ),
                        "partitions": {"type": "integer", "minimum": 1},
                        "replicationFactor": {"type": "integer", "minimum": 1},
                        "retentionMs": {"type": "integer", "minimum": -1},
                        "deadLetterRetentionMs": {"type": "integer", "minimum": -1},
                    },
                    required=[
                        "names",
                        "partitions",
                        "replicationFactor",
                        "retentionMs",
                        "deadLetterRetentionMs",
                    ],
                ),
                "provisioning": obj(
                    {
                        "enabled": boolean,
                        "backoffLimit": {"type": "integer", "minimum": 0},
                        "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                        "resources": ref("resources"),
                        "admin": obj(
                            {
                                "username": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
                                "mechanism": {"enum": ["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
                                "passwordSecret": obj(
                                    {"name": ref("optionalName"), "key": ref("secretKeyName")},
                                    required=["name", "key"],
                                ),
                                "certificateSecret": obj({"name": ref("optionalName")}, required=["name"]),
                            },
                            required=["username", "passwordSecret", "certificateSecret"],
                        ),
                        "credentials": boolean,
                    },
                    required=["enabled", "admin"],
                ),
            },
            required=["bootstrapServers", "securityProtocol", "sasl", "auth", "strimzi", "tls", "topics"],
            allOf=[
                # PLAIN sends the password itself: never over an unencrypted connection.
                {
                    "if": {"properties": {"securityProtocol": {"const": "SASL_PLAINTEXT"}}},
                    "then": {
                        "properties": {"sasl": {"properties": {"mechanism": {"not": {"const": "PLAIN"}}}}}
                    },
                },
                {
                    "if": {
                        "required": ["provisioning"],
                        "properties": {
                            "provisioning": {
                                "required": ["admin"],
                                "properties": {
                                    "admin": {
                                        "required": ["mechanism"],
                                        "properties": {"mechanism": {"const": "PLAIN"}},
                                    }
                                },
                            }
                        },
                    },
                    "then": {"properties": {"securityProtocol": {"const": "SASL_SSL"}}},
                },
                # Strimzi's KafkaUsers authenticate with SCRAM-SHA-512 (or a certificate: SSL).
                {
                    "if": {
                        "properties": {
                            "strimzi": {"properties": {"enabled": {"const": True}}},
                            "securityProtocol": {"not": {"const": "SSL"}},
                        }
                    },
                    "then": {
                        "properties": {"sasl": {"properties": {"mechanism": {"const": "SCRAM-SHA-512"}}}}
                    },
                },
                # Mutual TLS authenticates by certificate: a password, or a SASL mechanism for the
                # administrator, would be a second credential nobody uses.
                {
                    "if": {"properties": {"securityProtocol": {"const": "SSL"}}},
                    "then": {
                        "properties": {
                            "auth": {"properties": {"existingSecret": {"maxLength": 0}}},
                            "provisioning": {
                                "properties": {
                                    "credentials": {"const": False},
                                    "admin": {"properties": {"mechanism": {"maxLength": 0}}},
                                }
                            },
                        }
                    },
                    "else": {
                        "properties": {
                            "provisioning": {
                                "properties": {"admin": {"properties": {"certificateSecret": EMPTY_NAME}}}
                            }
                        }
                    },
                },
            ],
        ),
        "participants": {
            "type": "array",
            "items": obj(
                {
                    "name": ref("participantName"),
                    "sectors": {"type": "array", "items": ref("participantName"), "uniqueItems": True},
                },
                required=["name"],
            ),
        },
        "telemetry": obj(
            {
                "otlpEndpoint": {"type": "string", "pattern": r"^(https?://\S+)?$"},
                "otlpProtocol": {"enum": ["grpc", "http/protobuf"]},
                "resourceAttributes": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "metrics": obj({"enabled": boolean, "port": ref("port")}, required=["enabled", "port"]),
                "serviceMonitor": obj(
                    {
                        "enabled": boolean,
                        "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                        "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"},
                        "labels": ref("stringMap"),
                    },
                    required=["enabled"],
                ),
            }
        ),
        "grpcTls": obj(
            {"existingSecret": {"type": "string"}, "healthPort": ref("port")},
            required=["existingSecret", "healthPort"],
        ),
        "helmTest": obj(
            {
                "probeToken": obj(
                    {"existingSecret": ref("optionalName"), "key": ref("secretKeyName")},
                    required=["existingSecret", "key"],
                )
            },
            required=["probeToken"],
        ),
        "extraEnv": ref("envList"),
        "podSecurityContext": {
            "type": "object",
            "properties": {
                "runAsNonRoot": {"const": True},
                "runAsUser": {"type": "integer", "minimum": 1},
                "runAsGroup": {"type": "integer", "minimum": 1},
                "fsGroup": {"type": "integer", "minimum": 0},
                "seccompProfile": {
                    "type": "object",
                    "properties": {"type": {"enum": ["RuntimeDefault", "Localhost"]}},
                    "required": ["type"],
                },
            },
            "required": ["runAsNonRoot", "seccompProfile"],
        },
        "containerSecurityContext": {
            "type": "object",
            "properties": {
                "allowPrivilegeEscalation": {"const": False},
                "readOnlyRootFilesystem": boolean,
                "runAsNonRoot": boolean,
                "privileged": {"const": False},
                "capabilities": {
                    "type": "object",
                    "properties": {
                        "drop": {"type": "array", "contains": {"const": "ALL"}},
                        "add": {"type": "array", "maxItems": 0},
                    },
                    "required": ["drop"],
                },
            },
            "required": ["allowPrivilegeEscalation", "capabilities"],
        },
        "tmpSizeLimit": ref("quantity"),
        "stateSizeLimit": ref("quantity"),
        "probes": obj(
            {"liveness": ref("probe"), "readiness": ref("probe"), "startup": ref("probe")},
            required=["liveness", "readiness", "startup"],
        ),
        "identity": obj({"target": {"type": "string", "pattern": r"^([^\s:]+:\d{1,5})?$"}}),
        "intake": component(
            ["databaseUrl", "encryptionKeys", "pageTokenKey"],
            {
                "oidc": obj(
                    {
                        "issuers": oidc_issuers,
                        "existingConfigMap": ref("optionalName"),
                        "key": ref("secretKeyName"),
                        "tokenLifetime": {"type": "integer", "minimum": 1},
                    },
                    required=["issuers", "existingConfigMap", "key", "tokenLifetime"],
                    # One mapping: inline issuers or an existing ConfigMap's, not both.
                    keywords={
                        "if": {"properties": {"existingConfigMap": {"minLength": 1}}},
                        "then": {"properties": {"issuers": {"maxItems": 0}}},
                    },
                ),
            },
        ),
        "benchmark": component(
            ["databaseUrl", "serviceToken", "pageTokenKey"],
            {
                "executor": {"enum": ["kubernetes", "local"]},
                "maxConcurrency": {"type": "integer", "minimum": 1},
                "maxAttempts": {"type": "integer", "minimum": 1},
                "jobNamespace": {
                    "type": "string",
                    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
                    "maxLength": 63,
                },
                "catalog": yaml_doc,
                "accelerators": ACCELERATORS,
                "evalLogs": eval_logs,
                "worker": worker,
            },
        ),
        "clearinghouse": component(
            ["databaseUrl", "serviceToken", "signingKey", "pageTokenKey"],
            {
                "policy": yaml_doc,
                "signingKeyId": string,
                "publisher": obj(
                    {"name": string, "namespace": {"type": "string", "pattern": r"^(https?://\S+)?$"}}
                ),
            },
        ),
        "notifier": component(
            ["databaseUrl", "serviceToken", "smtpPassword", "pageTokenKey"],
            {
                "smtp": obj(
                    {
                        "host": {"type": "string", "minLength": 1},
                        "port": ref("port"),
                        "security": {"enum": ["starttls", "tls", "none"]},
                        "username": string,
                        "from": string,
                    },
                    required=["host", "port", "security"],
                ),
                "webhookSecrets": {"type": "array", "items": ref("secretKeyName"), "uniqueItems": True},
                "routing": yaml_doc,
            },
        ),
        "console": obj(
            {
                "enabled": boolean,
                "replicaCount": {"type": "integer", "minimum": 0},
                "image": ref("image"),
                "httpPort": ref("port"),
                "service": obj(
                    {
                        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "annotations": ref("stringMap"),
                    }
                ),
                "secureCookies": {"enum": ["always", "auto"]},
                "sessionTtl": {"type": "integer", "minimum": 1},
                "forwardedAllowIps": {"type": "string", "minLength": 1},
                "ingress": obj(
                    {
                        "enabled": boolean,
                        "className": string,
                        "annotations": ref("stringMap"),
                        "host": {"type": "string", "minLength": 1},
                        "tlsSecret": ref("optionalName"),
                    }
                ),
                "oidc": obj(
                    {
                        "issuer": {"type": "string", "pattern": f"^({OIDC_ISSUER})?$"},
                        "clientId": string,
                        "redirectUrl": {
                            "type": "string",
                            "pattern": r"^(https://[^\s/?#@]+/sign-in/oidc/callback)?$",
                        },
                        "scopes": {"type": "string", "pattern": r"(^|\s)openid(\s|$)"},
                        "name": {"type": "string", "minLength": 1},
                        "clientSecret": obj(
                            {"existingSecret": ref("optionalName"), "key": ref("secretKeyName")},
                            required=["existingSecret", "key"],
                        ),
                    },
                    required=["issuer", "clientId", "redirectUrl", "scopes", "name", "clientSecret"],
                    # The provider knows the console by its client id: required with an issuer.
                    keywords={
                        "if": {"properties": {"issuer": {"minLength": 1}}},
                        "then": {"properties": {"clientId": {"minLength": 1}}},
                    },
                ),
                "csaf": obj(
                    {
                        "openpgpKey": obj(
                            {"existingSecret": ref("optionalName"), "key": ref("secretKeyName")},
                            required=["existingSecret", "key"],
                        )
                    },
                    required=["openpgpKey"],
                ),
                "extraEnv": ref("envList"),
                "resources": ref("resources"),
                "podAnnotations": ref("stringMap"),
                "podLabels": ref("stringMap"),
                "nodeSelector": ref("stringMap"),
                "tolerations": ref("tolerations"),
                "affinity": {"type": "object"},
                "priorityClassName": string,
                "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
            },
            required=["enabled", "image", "httpPort"],
        ),
        "gateway": obj(
            {
                "enabled": boolean,
                "parentRefs": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj(
                        {
                            "name": {"type": "string", "minLength": 1},
                            "namespace": string,
                            "sectionName": string,
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "group": string,
                            "kind": string,
                        },
                        required=["name"],
                    ),
                },
                "hostnames": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "annotations": {"type": "object", "additionalProperties": string},
            },
            required=["enabled", "parentRefs"],
        ),
        "networkPolicy": obj(
            {
                "enabled": boolean,
                "ingress": obj(
                    {
                        k: ref("peers")
                        for k in ["intake", "benchmark", "clearinghouse", "notifier", "console", "metrics"]
                    }
                ),
                "egress": obj(
                    {
                        k: ref("egress")
                        for k in [
                            "dns",
                            "kafka",
                            "database",
                            "otlp",
                            "kubeAPI",
                            "smtp",
                            "webhooks",
                            "modelEndpoints",
                            "evalLogs",
                            "oidc",
                        ]
                    },
                    required=[
                        "dns",
                        "kafka",
                        "database",
                        "otlp",
                        "kubeAPI",
                        "smtp",
                        "webhooks",
                        "modelEndpoints",
                        "evalLogs",
                        "oidc",
                    ],
                ),
            },
            required=["enabled"],
        ),
        "serviceAccount": obj({"annotations": ref("stringMap")}),
    },
}

KAFKA_CLIENTS = ("intake", "benchmark", "clearinghouse", "notifier")


def each_kafka_client(credentials: dict[str, Any]) -> dict[str, Any]:
    """Every service's `kafkaCredentials` held to `credentials`."""
    return {"properties": {s: {"properties": {"kafkaCredentials": credentials}} for s in KAFKA_CLIENTS}}


# A service's credential follows the protocol: a certificate Secret with SSL, a password Secret
# otherwise; the other one set would be a credential nobody uses.
schema["allOf"] = [
    {
        "if": {"properties": {"kafka": {"properties": {"securityProtocol": {"const": "SSL"}}}}},
        "then": each_kafka_client(
            {"properties": {"passwordSecret": {"properties": {n: {"maxLength": 0} for n in ("name", "key")}}}}
        ),
        "else": each_kafka_client({"properties": {"certificateSecret": EMPTY_NAME}}),
    }
]


def main() -> None:
    print(json.dumps(schema, indent=2))


if __name__ == "__main__":
    main()
