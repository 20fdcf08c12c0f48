"""The console's feeds pulled by real clients: the console served on loopback by uvicorn, calling a
real clearinghouse on loopback (over SQLite) that authenticates through a real IdentityService,
as intake hosts it, which issues the tokens.

TAXII 2.1 with the `taxii2-client` package: an operator pulls exactly the STIX objects of the
findings shared with it (the clearinghouse's own exports of them, for it); an operator of another
sector gets none of them; a lab gets its own finding's source and never another lab's; a bad token
is 401; `added_after`, `limit`/`next`, `match[...]`, manifest and versions behave as the
specification says.

CSAF trusted provider, checked with the `csaf` package: its provider metadata passes the package's
CSAF 2.1 provider schema check; each advisory its ROLIE feeds list is the clearinghouse's export for
the caller, with a SHA-256 and SHA-512 that match and a detached OpenPGP signature that gpg verifies
with the key the metadata lists (the package's own signature check); `index.txt` and
`changes.csv` list the caller's advisories; another operator's advisory is 404, a bad token 401."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.domain.reviews.reports import SubmissionInfo
from preflight_clearinghouse.domain.sharing import Audience
from preflight_common.auth import Principal, Role
from preflight_common.ports import free_port
from preflight_console.config import Settings
from preflight_console.domain.taxii import stix_time
from preflight_console.entrypoints.web import build_app
from preflight_testkit.clearinghouse import (
    START,
    Api,
    LoopbackServer,
    ManualClock,
    make_components,
    make_finding,
    source,
    start_api,
    store_finding,
)
from preflight_testkit.openpgp import signing_key
from taxii2client.v21 import Collection, Server, as_pages

pytestmark = pytest.mark.slow  # gpg and its agent as processes, beside the servers on loopback

OP_ENERGY = Principal("op-a-user", Role.OPERATOR, "op-a", frozenset({"energy"}))
OP_FINANCE = Principal("op-b-user", Role.OPERATOR, "op-b", frozenset({"finance"}))
LAB_X = Principal("lab-x-user", Role.LAB, "lab-xq7")
LAB_Y = Principal("lab-y-user", Role.LAB, "lab-yz3")
LATER = START + timedelta(days=1)


@dataclass(frozen=True)
class Feeds:
    """The clearinghouse, the console's base URL and the findings stored: `energy` (shared with the
    energy sector), `finance` (with the finance sector), `lab` (found by lab-xq7, which did not
    consent to be named, shared with op-a) and `later` (shared with op-a a day after the rest)."""

    api: Api
    base: str
    findings: dict[str, str]

    def token(self, principal: Principal) -> str:
        return self.api.identity.token(principal)

    def collection(self, principal: Principal) -> Collection:
        """The principal's one collection, found from discovery with the token as Basic's password."""
        server = Server(f"{self.base}/taxii2/", user="feed", password=self.token(principal))
        (root,) = server.api_roots
        (collection,) = root.collections
        assert collection.can_read and not collection.can_write
        return collection

    def exported(self, principal: Principal, finding: str) -> list[dict[str, Any]]:
        """The STIX objects the clearinghouse exports of `finding` for `principal`."""
        request = pb.ExportFindingRequest(finding_id=self.findings[finding], format=pb.EXPORT_FORMAT_STIX)
        answer = self.api.stub.ExportFinding(request, metadata=self.api.as_(principal))
        objects: list[dict[str, Any]] = json.loads(answer.document)["objects"]
        return objects


def _serve(settings: Settings) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            thread.join(timeout=0.1)
        assert server.started, "the console did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feeds]:
    tmp = tmp_path_factory.mktemp("feeds")
    components = make_components(
        f"sqlite:///{tmp / 'ch.db'}", tmp, ReportSigner(Ed25519PrivateKey.generate()), ManualClock()
    )
    loopback = LoopbackServer()
    try:
        api = start_api(loopback, tmp, components)
        lab_source = source("lab-xq7", consent=False)
        stored = {
            "energy": make_finding(title="Energy flaw", audience=Audience(sectors=frozenset({"energy"}))),
            "finance": make_finding(title="Finance flaw", audience=Audience(sectors=frozenset({"finance"}))),
            "lab": make_finding(
                title="Lab flaw",
                audience=Audience(organisations=frozenset({"op-a"})),
                source=lab_source,
            ),
        }
        stored["later"] = make_finding(
            title="Later flaw",
            audience=Audience(organisations=frozenset({"op-a"})),
            created_at=LATER,
            updated_at=LATER,
            published_at=LATER,
        )
        with components.reviews_store.write() as reviews:
            reviews.put_submission(
                SubmissionInfo(lab_source.submission_id, "lab-xq7", "frontier", "2.0", False, START)
            )
            uow = components.findings_store.join(reviews)
            for finding in stored.values():
                store_finding(uow, finding)
        key_file = signing_key(tmp)
        settings = Settings(
            listen="127.0.0.1:0",
            intake_target=api.identity.target,
            clearinghouse_target=api.target,
            benchmark_target="127.0.0.1:1",
            notifier_target="127.0.0.1:1",
            session_key_file=tmp / "session.key",
            session_ttl=60.0,
            secure_cookies="auto",
            csaf_openpgp_key_file=key_file,
        )
        for base in _serve(settings):
            yield Feeds(api, base, {name: f.finding_id for name, f in stored.items()})
        api.channel.close()
    finally:
        loopback.close()
        components.engine.dispose()


def _ids(objects: list[dict[str, Any]], kind: str = "") -> set[str]:
    return {o["id"] for o in objects if not kind or o["type"] == kind}


def _names(objects: list[dict[str, Any]]) -> set[str]:
    """The names of the vulnerabilities among `objects`."""
    return {o["name"] for o in objects if o["type"] == "vulnerability"}


def _pulled(collection: Collection, **filters: Any) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for envelope in as_pages(collection.get_objects, per_request=3, **filters):
        objects += envelope.get("objects", [])
    return objects


def test_an_operator_pulls_exactly_what_is_shared_with_it(feeds: Feeds) -> None:
    pulled = _pulled(feeds.collection(OP_ENERGY))
    expected = [o for name in ("energy", "lab", "later") for o in feeds.exported(OP_ENERGY, name)]
    assert _ids(pulled) == _ids(expected) and len(pulled) == len(_ids(pulled))
    assert _names(pulled) == {"Energy flaw", "Lab flaw", "Later flaw"}
    # The lab did not consent: the operator's view, and so its feed, does not name it.
    assert "lab-xq7" not in json.dumps(pulled)

    finance = _pulled(feeds.collection(OP_FINANCE))
    assert _names(finance) == {"Finance flaw"}
    assert not _ids(finance, "vulnerability") & _ids(pulled, "vulnerability")


def test_a_lab_gets_its_own_source_and_never_another_labs(feeds: Feeds) -> None:
    own = _pulled(feeds.collection(LAB_X))
    assert _names(own) == {"Lab flaw"}
    assert "lab-xq7" in json.dumps(own)
    other = _pulled(feeds.collection(LAB_Y))
    assert not _ids(other, "vulnerability") and "lab-xq7" not in json.dumps(other)


def test_filters_pages_manifest_and_versions(feeds: Feeds) -> None:
    collection = feeds.collection(OP_ENERGY)
    everything = _pulled(collection)
    later = _ids(feeds.exported(OP_ENERGY, "later"), "vulnerability")
    since = stix_time(START + timedelta(hours=1))
    assert _ids(_pulled(collection, added_after=since), "vulnerability") == later
    only = _pulled(collection, type="vulnerability")
    assert {o["type"] for o in only} == {"vulnerability"} and len(only) == 3

    first = collection.get_objects(limit=2)
    assert len(first["objects"]) == 2 and first["more"] is True and first["next"]
    rest = collection.get_objects(limit=1000, next=first["next"])
    assert _ids(first["objects"]) | _ids(rest["objects"]) == _ids(everything) and rest["more"] is False

    manifest = collection.get_manifest()["objects"]
    assert {m["id"] for m in manifest} == _ids(everything)
    assert {m["media_type"] for m in manifest} == {"application/stix+json;version=2.1"}
    (vulnerability,) = later
    assert [o["id"] for o in collection.get_object(vulnerability)["objects"]] == [vulnerability]
    (version,) = collection.object_versions(vulnerability)["versions"]
    assert version == next(m["version"] for m in manifest if m["id"] == vulnerability)
    # Another operator's vulnerability is not in this collection at all.
    (elsewhere,) = _ids(feeds.exported(OP_FINANCE, "finance"), "vulnerability")
    with pytest.raises(requests.HTTPError) as caught:
        collection.get_object(elsewhere)
    assert caught.value.response.status_code == 404


def test_refusals(feeds: Feeds) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        Server(f"{feeds.base}/taxii2/", user="feed", password="pft_not-a-token").refresh()
    assert caught.value.response.status_code == 401
    collection_url = feeds.collection(OP_ENERGY).url
    bearer = {"authorization": f"Bearer {feeds.token(OP_ENERGY)}"}
    with httpx.Client(timeout=60) as client:
        anonymous = client.get(f"{collection_url}objects/")
        assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]
        assert anonymous.headers["content-type"] == "application/taxii+json;version=2.1"
        answer = client.get(f"{collection_url}objects/", headers=bearer)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/taxii+json;version=2.1"
        assert answer.headers["x-taxii-date-added-first"] <= answer.headers["x-taxii-date-added-last"]
        posted = client.post(f"{collection_url}objects/", headers=bearer, json={"objects": []})
        assert posted.status_code == 405
        bad = client.get(f"{collection_url}objects/", headers=bearer, params={"added_after": "yesterday"})
        assert bad.status_code == 400 and "added_after" in bad.json()["description"]
        other = collection_url.replace(collection_url.rstrip("/").rsplit("/", 1)[1], "not-a-collection")
        assert client.get(other, headers=bearer).status_code == 404
        assert client.get(collection_url, headers={**bearer, "accept": "text/html"}).status_code == 406


def test_a_finding_changed_later_is_pulled_again_by_added_after(feeds: Feeds) -> None:
    """date_added follows the finding's last change, so a poller sees a finding newly shared with it."""
    collection = feeds.collection(OP_FINANCE)
    checkpoint = stix_time(LATER)
    assert not _pulled(collection, added_after=checkpoint)
    finding = replace(
        make_finding(title="Newly shared", audience=Audience(sectors=frozenset({"finance"}))),
        updated_at=LATER + timedelta(hours=1),
    )
    with feeds.api.components.findings_store.write() as uow:
        store_finding(uow, finding)
    assert _names(_pulled(collection, added_after=checkpoint)) == {"Newly shared"}


# -- the CSAF trusted provider -------------------------------------------------------------------


def _get(feeds: Feeds, principal: Principal, url: str) -> httpx.Response:
    answer = httpx.get(url, headers={"authorization": f"Bearer {feeds.token(principal)}"}, timeout=60)
    answer.raise_for_status()
    return answer


def _rolie_entries(feeds: Feeds, principal: Principal, metadata: dict[str, Any]) -> dict[str, list[Any]]:
    """Each ROLIE feed's entries by TLP label, each feed checked for what CSAF requires of it."""
    (rolie,) = [d["rolie"] for d in metadata["distributions"] if "rolie" in d]
    entries = {}
    for listed in rolie["feeds"]:
        feed = _get(feeds, principal, listed["url"]).json()["feed"]
        assert feed["category"] == [
            {"scheme": "urn:ietf:params:rolie:category:information-type", "term": "csaf"}
        ]
        assert feed["link"][0] == {"rel": "self", "href": listed["url"]} and feed["id"] and feed["title"]
        for entry in feed["entry"]:
            assert {"id", "title", "link", "published", "updated", "content", "format"} <= set(entry)
            assert entry["format"]["version"] == "2.1" and entry["content"]["type"] == "application/json"
            assert entry["link"][0] == {"rel": "self", "href": entry["content"]["src"]}
        entries[listed["tlp_label"]] = feed["entry"]
    return entries


def test_the_csaf_provider_passes_the_csaf_packages_checks(feeds: Feeds, tmp_path: Path) -> None:
    from csaf._distribute import validate_feed
    from csaf._sign import verify

    url = f"{feeds.base}/.well-known/csaf/provider-metadata.json"
    metadata = _get(feeds, OP_ENERGY, url).json()
    (tmp_path / "provider-metadata.json").write_text(json.dumps(metadata))
    valid, errors = validate_feed(str(tmp_path / "provider-metadata.json"), "provider")
    assert valid, errors
    assert metadata["role"] == "csaf_trusted_provider" and metadata["canonical_url"] == url
    (key,) = metadata["public_openpgp_keys"]
    (tmp_path / "key.asc").write_bytes(_get(feeds, OP_ENERGY, key["url"]).content)

    entries = _rolie_entries(feeds, OP_ENERGY, metadata)
    assert {e["title"] for e in entries["AMBER"]} == {"Energy flaw", "Lab flaw", "Later flaw"}
    assert not any(entries[label] for label in entries if label != "AMBER")
    for entry in entries["AMBER"]:
        document_url = entry["content"]["src"]
        finding = next(name for name, fid in feeds.findings.items() if fid in document_url)
        raw = _get(feeds, OP_ENERGY, document_url).content
        exported = pb.ExportFindingRequest(finding_id=feeds.findings[finding], format=pb.EXPORT_FORMAT_CSAF)
        assert raw == feeds.api.stub.ExportFinding(exported, metadata=feeds.api.as_(OP_ENERGY)).document
        year = json.loads(raw)["document"]["tracking"]["initial_release_date"][:4]
        assert document_url.startswith(f"{feeds.base}/.well-known/csaf/amber/{year}/preflight-")
        for suffix, digest in ((".sha256", hashlib.sha256), (".sha512", hashlib.sha512)):
            hashed = _get(feeds, OP_ENERGY, document_url + suffix).text
            assert hashed == f"{digest(raw).hexdigest()}  {document_url.rsplit('/', 1)[1]}\n"
        (tmp_path / "advisory.json").write_bytes(raw)
        (tmp_path / "advisory.json.asc").write_bytes(_get(feeds, OP_ENERGY, document_url + ".asc").content)
        assert verify(tmp_path / "advisory.json", tmp_path / "advisory.json.asc", tmp_path / "key.asc")[0]
        (tmp_path / "advisory.json").write_bytes(raw.replace(b"flaw", b"flow"))
        assert not verify(tmp_path / "advisory.json", tmp_path / "advisory.json.asc", tmp_path / "key.asc")[0]

    folder = f"{feeds.base}/.well-known/csaf/amber"
    paths = [e["content"]["src"].removeprefix(folder + "/") for e in entries["AMBER"]]
    assert _get(feeds, OP_ENERGY, f"{folder}/index.txt").text.splitlines() == sorted(paths)
    changes = _get(feeds, OP_ENERGY, f"{folder}/changes.csv").text.splitlines()
    assert [line.split(",")[0].strip('"') for line in changes] == paths  # newest change first
    assert changes[0].startswith(f'"{paths[0]}","') and entries["AMBER"][0]["title"] == "Later flaw"


def test_the_csaf_provider_is_each_principals_own_view(feeds: Feeds) -> None:
    url = f"{feeds.base}/.well-known/csaf/provider-metadata.json"
    energy = _rolie_entries(feeds, OP_ENERGY, _get(feeds, OP_ENERGY, url).json())
    finance = _rolie_entries(feeds, OP_FINANCE, _get(feeds, OP_FINANCE, url).json())
    assert {e["title"] for entries in finance.values() for e in entries} >= {"Finance flaw"}
    assert not {e["title"] for entries in finance.values() for e in entries} & {"Energy flaw", "Lab flaw"}
    other_lab = _rolie_entries(feeds, LAB_Y, _get(feeds, LAB_Y, url).json())
    assert not any(other_lab.values())

    document_url = next(e["content"]["src"] for e in energy["AMBER"] if e["title"] == "Lab flaw")
    bearer = {"authorization": f"Bearer {feeds.token(OP_FINANCE)}"}
    with httpx.Client(timeout=60) as client:
        for suffix in ("", ".sha512", ".asc"):
            assert client.get(document_url + suffix, headers=bearer).status_code == 404
        assert client.get(document_url).status_code == 401
        assert client.get(url, headers={"authorization": "Bearer pft_not-a-token"}).status_code == 401
        # The advisory's own URL, under another TLP folder or year, is not it.
        moved = document_url.replace("/amber/", "/red/")
        own = {"authorization": f"Bearer {feeds.token(OP_ENERGY)}"}
        assert client.get(moved, headers=own).status_code == 404
        assert client.post(url, headers=own).status_code == 405
