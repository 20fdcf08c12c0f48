"""The submission manifest: a YAML file describing one model version for review.

    model:
      developer: example-lab          # your organisation, as in your token
      name: frontier-1
      version: "2026.06"
    planned_release: 2026-07-15T00:00:00Z   # or relative to now: "+21d", "+36h", "+90m"
    access:
      endpoint:                        # an OpenAI-compatible endpoint ...
        base_url: https://api.example-lab.com/v1
        model_name: frontier-1-preview
        credential_env: EXAMPLE_LAB_API_KEY    # or credential_file: path/to/key
      # weights:                       # ... or weights reviewers serve themselves
      #   artifact_uri: s3://bucket/frontier-1/
      #   sha256: <64 lower-case hex>
      #   format: safetensors          # safetensors, gguf, pytorch or onnx
    access_window:
      start: "+0d"
      end: "+20d"                      # at most 30 days long, ending by the release
    contacts:
      - {name: Ada Example, email: ada@example-lab.com, role: security}
    declared_capabilities: [code_generation, tool_use]
    intended_use: |
      General-purpose assistant.
    consent:
      share_identity_with_operators: false
    idempotency_key: frontier-1-2026.06   # optional

Times are RFC 3339 with a timezone, or `+N` followed by d, h or m: N days from
the start of the current UTC day, N hours from the start of the current hour, N
minutes from the start of the current minute (so the same manifest run again
soon after describes the same request).
The credential is never written in the manifest: it is read from the named
environment variable or file. Without `idempotency_key`, the key is derived
from the manifest's content (everything but the credential), so submitting the
same manifest twice returns the first submission.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2, submission_pb2

_RELATIVE = re.compile(r"\+(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_TOP_LEVEL = {
    "model",
    "planned_release",
    "access",
    "access_window",
    "contacts",
    "declared_capabilities",
    "intended_use",
    "consent",
    "idempotency_key",
}


class ManifestError(ValueError):
    """The manifest is malformed; `path` is where (e.g. `access.endpoint.credential_env`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def load_manifest(
    path: str | Path, *, environ: Mapping[str, str] | None = None, now: datetime | None = None
) -> intake_pb2.SubmitModelRequest:
    """Read a manifest file into a SubmitModelRequest (idempotency key set); raises ManifestError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError("", f"cannot read {file}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError("", f"{file} is not valid YAML: {exc}") from None
    return parse_manifest(
        data, base_dir=file.parent, environ=os.environ if environ is None else environ, now=now
    )


def parse_manifest(
    data: Any, *, base_dir: Path, environ: Mapping[str, str], now: datetime | None = None
) -> intake_pb2.SubmitModelRequest:
    """Build the request from parsed YAML (see the module docstring for the format)."""
    root = _mapping(data, "", _TOP_LEVEL)
    moment = now or datetime.now(UTC)
    model = _mapping(root.get("model"), "model", {"developer", "name", "version"})
    request = intake_pb2.SubmitModelRequest(
        model=submission_pb2.ModelIdentity(
            developer=_text(model, "developer", "model"),
            name=_text(model, "name", "model"),
            version=_text(model, "version", "model"),
        ),
        planned_release=_time(root.get("planned_release"), "planned_release", moment),
        access=_access(root.get("access"), base_dir, environ),
        contacts=_contacts(root.get("contacts")),
        declared_capabilities=_strings(root.get("declared_capabilities", []), "declared_capabilities"),
        intended_use=_text(root, "intended_use", "", required=False),
    )
    window = _mapping(root.get("access_window"), "access_window", {"start", "end"})
    request.access_window.CopyFrom(
        submission_pb2.AccessWindow(
            start=_time(window.get("start"), "access_window.start", moment),
            end=_time(window.get("end"), "access_window.end", moment),
        )
    )
    consent = _mapping(root.get("consent", {}), "consent", {"share_identity_with_operators"})
    share = consent.get("share_identity_with_operators", False)
    if not isinstance(share, bool):
        raise ManifestError("consent.share_identity_with_operators", "must be true or false")
    request.consent.share_identity_with_operators = share
    request.idempotency_key = _text(root, "idempotency_key", "", required=False) or derived_key(request)
    return request


def derived_key(request: intake_pb2.SubmitModelRequest) -> str:
    """An idempotency key from the request's content without its credential."""
    body = intake_pb2.SubmitModelRequest()
    body.CopyFrom(request)
    body.ClearField("idempotency_key")
    if body.access.WhichOneof("kind") == "endpoint":
        body.access.endpoint.ClearField("credential")
    return "manifest-" + hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()[:40]


def parse_time(value: Any, path: str, now: datetime | None = None) -> datetime:
    """An aware datetime from RFC 3339 text (or a YAML timestamp) or a `+N[dhm]` offset (see the module)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise ManifestError(path, "give a date and a time with a timezone, e.g. 2026-07-15T00:00:00Z")
    elif isinstance(value, str) and (relative := _RELATIVE.fullmatch(value.strip())):
        amount, unit = relative.groups()
        return _truncate(now or datetime.now(UTC), unit) + timedelta(**{_UNITS[unit]: int(amount)})
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ManifestError(
                path, f"{value!r} is not a time (RFC 3339 like 2026-07-15T00:00:00Z, or +21d)"
            ) from None
    else:
        raise ManifestError(path, "is required: a time such as 2026-07-15T00:00:00Z or +21d")
    if moment.tzinfo is None:
        raise ManifestError(path, "needs a timezone, e.g. 2026-07-15T00:00:00Z")
    return moment


def _truncate(moment: datetime, unit: str) -> datetime:
    """The start of the UTC day, hour or minute of `moment`."""
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if unit in "dh":
        moment = moment.replace(minute=0)
    if unit == "d":
        moment = moment.replace(hour=0)
    return moment


def _time(value: Any, path: str, now: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(parse_time(value, path, now))
    return ts


def _mapping(value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(path, "must be a mapping" if value is not None else "is required")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        where = f"{path}." if path else ""
        raise ManifestError(
            f"{where}{unknown[0]}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
        )
    return value


def _text(data: Mapping[str, Any], key: str, parent: str, *, required: bool = True) -> str:
    path = f"{parent}.{key}" if parent else key
    value = data.get(key)
    if value is None:
        if required:
            raise ManifestError(path, "is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ManifestError(path, "must be text")
    return str(value)


def _strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ManifestError(path, "must be a list of strings")
    return value


def _contacts(value: Any) -> list[common_pb2.Contact]:
    if not isinstance(value, list) or not value:
        raise ManifestError("contacts", "needs at least one contact (name, email, role)")
    contacts = []
    for i, item in enumerate(value):
        path = f"contacts[{i}]"
        entry = _mapping(item, path, {"name", "email", "role"})
        contacts.append(
            common_pb2.Contact(
                name=_text(entry, "name", path),
                email=_text(entry, "email", path),
                role=_text(entry, "role", path, required=False),
            )
        )
    return contacts


def _access(value: Any, base_dir: Path, environ: Mapping[str, str]) -> intake_pb2.ModelAccessSpec:
    access = _mapping(value, "access", {"endpoint", "weights"})
    if len(access) != 1:
        raise ManifestError("access", "give exactly one of endpoint or weights")
    if "weights" in access:
        weights = _mapping(access["weights"], "access.weights", {"artifact_uri", "sha256", "format"})
        return intake_pb2.ModelAccessSpec(
            weights=submission_pb2.WeightsAccess(
                artifact_uri=_text(weights, "artifact_uri", "access.weights"),
                sha256=_text(weights, "sha256", "access.weights"),
                format=_text(weights, "format", "access.weights"),
            )
        )
    path = "access.endpoint"
    endpoint = _mapping(
        access["endpoint"],
        path,
        {"base_url", "model_name", "credential_env", "credential_file", "credential"},
    )
    if "credential" in endpoint:
        raise ManifestError(
            f"{path}.credential",
            "never put the credential in the manifest; use credential_env or credential_file",
        )
    return intake_pb2.ModelAccessSpec(
        endpoint=intake_pb2.EndpointAccessSpec(
            base_url=_text(endpoint, "base_url", path),
            model_name=_text(endpoint, "model_name", path),
            credential=_credential(endpoint, base_dir, environ),
        )
    )


def _credential(endpoint: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str]) -> str:
    path = "access.endpoint"
    if ("credential_env" in endpoint) == ("credential_file" in endpoint):
        raise ManifestError(path, "give exactly one of credential_env or credential_file")
    if "credential_env" in endpoint:
        name = _text(endpoint, "credential_env", path)
        credential = environ.get(name, "")
        if not credential:
            raise ManifestError(f"{path}.credential_env", f"the environment variable {name} is not set")
        return credential
    file = base_dir / _text(endpoint, "credential_file", path)
    try:
        credential = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ManifestError(f"{path}.credential_file", f"cannot read {file}: {exc.strerror}") from None
    if not credential:
        raise ManifestError(f"{path}.credential_file", f"{file} is empty")
    return credential
