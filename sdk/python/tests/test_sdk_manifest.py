"""The submission manifest: the documented example parses, and every mistake names its place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from preflight.sdk.manifest import ManifestError, load_manifest, parse_manifest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "model.yaml"
NOW = datetime(2026, 6, 10, 15, 42, 7, tzinfo=UTC)
MIDNIGHT = datetime(2026, 6, 10, tzinfo=UTC)


def example() -> dict[str, object]:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def parse(data: object, environ: dict[str, str] | None = None, base_dir: Path = Path()) -> object:
    return parse_manifest(
        data, base_dir=base_dir, environ=environ or {"EXAMPLE_LAB_API_KEY": "sk-1"}, now=NOW
    )


def test_the_example_manifest_becomes_a_complete_request() -> None:
    request = load_manifest(EXAMPLE, environ={"EXAMPLE_LAB_API_KEY": "sk-example"}, now=NOW)
    assert request.model.developer == "example-lab"
    assert request.access.endpoint.credential == "sk-example"
    assert request.planned_release.ToDatetime(tzinfo=UTC) == MIDNIGHT + timedelta(days=21)
    assert request.access_window.start.ToDatetime(tzinfo=UTC) == MIDNIGHT
    assert request.access_window.end.ToDatetime(tzinfo=UTC) == MIDNIGHT + timedelta(days=20)
    assert [c.email for c in request.contacts] == ["ada@example-lab.test", "grace@example-lab.test"]
    assert not request.consent.share_identity_with_operators
    assert request.idempotency_key.startswith("manifest-")


def test_the_derived_key_ignores_the_credential_and_follows_the_content() -> None:
    key = load_manifest(EXAMPLE, environ={"EXAMPLE_LAB_API_KEY": "sk-a"}, now=NOW).idempotency_key
    assert load_manifest(EXAMPLE, environ={"EXAMPLE_LAB_API_KEY": "sk-b"}, now=NOW).idempotency_key == key
    assert "sk-a" not in key
    later_today = load_manifest(
        EXAMPLE, environ={"EXAMPLE_LAB_API_KEY": "sk-a"}, now=NOW + timedelta(hours=3)
    )
    assert later_today.idempotency_key == key
    tomorrow = load_manifest(EXAMPLE, environ={"EXAMPLE_LAB_API_KEY": "sk-a"}, now=NOW + timedelta(days=1))
    assert tomorrow.idempotency_key != key


def test_absolute_times_and_weights_access() -> None:
    data = example()
    data["planned_release"] = "2026-07-15T00:00:00Z"
    data["access_window"] = {"start": datetime(2026, 6, 20, tzinfo=UTC), "end": "2026-07-14T12:00:00+02:00"}
    data["access"] = {"weights": {"artifact_uri": "s3://m/f/", "sha256": "a" * 64, "format": "gguf"}}
    data["idempotency_key"] = "frontier-2026.06"
    request = parse(data)
    assert request.planned_release.ToDatetime(tzinfo=UTC) == datetime(2026, 7, 15, tzinfo=UTC)  # type: ignore[attr-defined]
    assert request.access_window.end.ToDatetime(tzinfo=UTC) == datetime(2026, 7, 14, 10, tzinfo=UTC)  # type: ignore[attr-defined]
    assert request.access.weights.format == "gguf"  # type: ignore[attr-defined]
    assert request.idempotency_key == "frontier-2026.06"  # type: ignore[attr-defined]


def test_the_credential_can_come_from_a_file_next_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("sk-from-file\n")
    data = example()
    data["access"] = {
        "endpoint": {"base_url": "https://a/v1", "model_name": "m", "credential_file": "key.txt"}
    }
    assert parse(data, base_dir=tmp_path).access.endpoint.credential == "sk-from-file"  # type: ignore[attr-defined]


def _set(path: str, value: object) -> dict[str, object]:
    data = example()
    *parents, leaf = path.split(".")
    target: dict[str, object] = data
    for parent in parents:
        child = target[parent]
        assert isinstance(child, dict)
        target = child
    target[leaf] = value
    return data


@pytest.mark.parametrize(
    ("data", "environ", "where"),
    [
        ([1, 2], None, ""),
        (_set("modle", {}), None, "modle"),
        (_set("model.developer", None), None, "model.developer"),
        (_set("model.name", ["x"]), None, "model.name"),
        (_set("planned_release", "next tuesday"), None, "planned_release"),
        (_set("planned_release", "2026-07-15T00:00:00"), None, "planned_release"),
        (_set("planned_release", datetime(2026, 7, 15).date()), None, "planned_release"),
        (_set("access", {}), None, "access"),
        (_set("access.endpoint.credential", "sk-inline"), None, "access.endpoint.credential"),
        (_set("access.endpoint.credential_env", "NOT_SET"), {}, "access.endpoint.credential_env"),
        (_set("access_window", None), None, "access_window"),
        (_set("contacts", []), None, "contacts"),
        (_set("contacts", [{"name": "A", "mail": "a@b.c"}]), None, "contacts[0].mail"),
        (_set("declared_capabilities", "code_generation"), None, "declared_capabilities"),
        (_set("consent.share_identity_with_operators", "yes"), None, "consent.share_identity_with_operators"),
    ],
)
def test_mistakes_name_their_place(data: object, environ: dict[str, str] | None, where: str) -> None:
    with pytest.raises(ManifestError) as error:
        parse(data, environ=environ if environ is not None else {"EXAMPLE_LAB_API_KEY": "sk-1"})
    assert error.value.path == where


def test_an_unreadable_or_invalid_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(broken)
