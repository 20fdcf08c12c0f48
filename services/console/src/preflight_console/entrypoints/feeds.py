"""Feeds that operators' tools pull: a TAXII 2.1 server of the STIX exports, and a CSAF trusted
provider of the CSAF 2.1 exports (provider metadata, ROLIE feeds per TLP label, canonical document
URLs with hashes and OpenPGP signatures, `index.txt` and `changes.csv`).

Machine endpoints, not pages: no session, no CSRF (GET only; a POST to a collection's objects is
405, as a collection that cannot be written answers). Each request authenticates with the caller's
own Preflight token, `Authorization: Bearer <token>`, or HTTP Basic with the token as the password
(as TAXII clients commonly send it); without one, or with one the services refuse, it is 401. Every
document comes from the clearinghouse, exported from the caller's view with the caller's token, so a
feed holds exactly what its sharing policy gives that principal and nothing the console makes up.

One collection, "Shared with you", whose contents are each principal's own view: per-audience
collections would tell a principal which audiences exist and split one view in several, and the
sharing policy already decides, per finding, who sees it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.sdk.aio import AsyncClearinghouseClient
from preflight.sdk.errors import PreflightError, from_rpc_error
from preflight_common.fields import timestamp
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from preflight_console.adapters.apis import Apis
from preflight_console.adapters.openpgp import OpenPgpSigner
from preflight_console.domain import taxii

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
TAXII_ROOT = "/taxii2"
API_ROOT = f"{TAXII_ROOT}/preflight"
COLLECTION_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "preflight:taxii:shared-with-you"))
EXPORTS_AT_ONCE = 8
"""ExportFinding calls one request makes at a time."""
HTTP_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
}
CHALLENGE = 'Bearer realm="Preflight", Basic realm="Preflight"'


class FeedError(Exception):
    """Answer `status` with a TAXII error message."""

    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description


def caller_token(request: Request) -> str:
    """The Preflight token of `Authorization`: Bearer, or Basic with the token as the password."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential:
        return credential
    if scheme.lower() == "basic" and credential:
        try:
            _user, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        if password:
            return password
    raise FeedError(401, "authentication required", "send a Preflight token as a Bearer token")


def _json(body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=dict(headers or {}), media_type=TAXII_MEDIA_TYPE)


def _error(error: FeedError) -> Response:
    body = {"title": error.title, "http_status": str(error.status)}
    if error.description:
        body["description"] = error.description
    return _json(body, error.status, {"WWW-Authenticate": CHALLENGE} if error.status == 401 else None)


Feed = Callable[[Request, AsyncClearinghouseClient], Awaitable[Response]]


def _guarded(
    feed: Feed, refusal: Callable[[FeedError], Response]
) -> Callable[[Request], Awaitable[Response]]:
    """`feed` called as the holder of the request's token (else 401), each refusal (its own, or the
    clearinghouse's; an unreachable service 502) answered by `refusal`."""

    async def endpoint(request: Request) -> Response:
        try:
            apis: Apis = request.app.state.console.apis
            try:
                return await feed(request, apis.clearinghouse(caller_token(request)))
            except (PreflightError, grpc.aio.AioRpcError) as exc:
                error = exc if isinstance(exc, PreflightError) else from_rpc_error(exc)
                status = HTTP_STATUS.get(error.code, 502)
                message = "a Preflight service did not answer; try again" if status == 502 else error.message
                raise FeedError(status, message) from None
        except FeedError as refused:
            return refusal(refused)

    endpoint.__name__ = feed.__name__
    return endpoint


def taxii_endpoint(feed: Feed) -> Callable[[Request], Awaitable[Response]]:
    """A TAXII endpoint: the caller's token (else 401), an acceptable `Accept` (else 406), and every
    refusal a TAXII error message."""

    async def accepting(request: Request, client: AsyncClearinghouseClient) -> Response:
        accept = request.headers.get("accept", "*/*")
        if not any(m in accept for m in ("application/taxii+json", "*/*", "application/*")):
            raise FeedError(406, "not acceptable", f"this server answers {TAXII_MEDIA_TYPE}")
        return await feed(request, client)

    accepting.__name__ = feed.__name__
    return _guarded(accepting, _error)


async def _ensure_caller(client: AsyncClearinghouseClient) -> None:
    """Ask the clearinghouse once, so a token it refuses is 401 even where nothing else is asked."""
    await client.list_findings(page_size=1)


@taxii_endpoint
async def discovery(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The server's discovery resource: its one API root."""
    await _ensure_caller(client)
    root = f"{request.url.scheme}://{request.url.netloc}{API_ROOT}/"
    return _json(
        {
            "title": "Preflight",
            "description": "Findings of pre-release reviews of frontier AI models, as shared with you",
            "default": root,
            "api_roots": [root],
        }
    )


@taxii_endpoint
async def api_root(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The API root's information."""
    await _ensure_caller(client)
    return _json(
        {
            "title": "Preflight findings",
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": 0,
        }
    )


def _collection() -> dict[str, Any]:
    return {
        "id": COLLECTION_ID,
        "title": "Shared with you",
        "description": "The findings the clearinghouse shares with you, as STIX 2.1",
        "can_read": True,
        "can_write": False,
        "media_types": [taxii.STIX_MEDIA_TYPE],
    }


@taxii_endpoint
async def collections(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The collections: the one of the caller's own view."""
    await _ensure_caller(client)
    return _json({"collections": [_collection()]})


def _check_collection(request: Request) -> None:
    if request.path_params["collection_id"] != COLLECTION_ID:
        raise FeedError(404, "no such collection")


@taxii_endpoint
async def collection(request: Request, client: AsyncClearinghouseClient) -> Response:
    """One collection's information."""
    _check_collection(request)
    await _ensure_caller(client)
    return _json(_collection())


async def _entries(client: AsyncClearinghouseClient, query: taxii.Query) -> list[taxii.Entry]:
    """The STIX objects of every finding the caller may see (changed since `added_after`, when given)."""
    filter = clearinghouse_pb2.FindingFilter()
    if query.added_after is not None:
        filter.since.CopyFrom(timestamp(query.added_after))
    findings = [f async for f in client.iter_findings(filter, page_size=500)]
    limit = asyncio.Semaphore(EXPORTS_AT_ONCE)

    async def bundle(finding: clearinghouse_pb2.Finding) -> tuple[datetime, list[dict[str, Any]]]:
        async with limit:
            exported = await client.export_finding(finding.finding_id, clearinghouse_pb2.EXPORT_FORMAT_STIX)
        objects: list[dict[str, Any]] = json.loads(exported.document)["objects"]
        return finding.updated_at.ToDatetime(tzinfo=UTC), objects

    return taxii.entries(await asyncio.gather(*(bundle(f) for f in findings)))


def _query(request: Request) -> taxii.Query:
    try:
        return taxii.parse_query(request.query_params)
    except taxii.BadFilter as bad:
        raise FeedError(400, f"bad {bad.field}", str(bad)) from None


Render = Callable[[list[taxii.Entry]], dict[str, Any]]


def _paged(chosen: list[taxii.Entry], query: taxii.Query, render: Render) -> Response:
    """A page of `chosen` as TAXII answers it, with the date-added headers of its first and last."""
    shown, more = taxii.page(chosen, query)
    body = {"more": more, **render(shown)}
    if more:
        body["next"] = taxii.encode_next(shown[-1])
    headers = {}
    if shown:
        headers["X-TAXII-Date-Added-First"] = taxii.stix_time(shown[0].date_added)
        headers["X-TAXII-Date-Added-Last"] = taxii.stix_time(shown[-1].date_added)
    return _json(body, headers=headers)


@taxii_endpoint
async def objects(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The collection's objects, as an envelope."""
    _check_collection(request)
    query = _query(request)
    chosen = taxii.select(await _entries(client, query), query)
    return _paged(chosen, query, lambda shown: {"objects": [e.body for e in shown]})


@taxii_endpoint
async def one_object(request: Request, client: AsyncClearinghouseClient) -> Response:
    """One object's versions the filters match, as an envelope (404 when the caller has none)."""
    _check_collection(request)
    query = _query(request)
    chosen = taxii.select(await _entries(client, query), query, object_id=request.path_params["object_id"])
    if not chosen:
        raise FeedError(404, "no such object")
    return _paged(chosen, query, lambda shown: {"objects": [e.body for e in shown]})


@taxii_endpoint
async def manifest(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The manifest of the collection's objects: id, date added, version, media type."""
    _check_collection(request)
    query = _query(request)
    chosen = taxii.select(await _entries(client, query), query)
    return _paged(
        chosen,
        query,
        lambda shown: {
            "objects": [
                {
                    "id": e.object_id,
                    "date_added": taxii.stix_time(e.date_added),
                    "version": taxii.stix_time(e.version),
                    "media_type": taxii.STIX_MEDIA_TYPE,
                }
                for e in shown
            ]
        },
    )


@taxii_endpoint
async def versions(request: Request, client: AsyncClearinghouseClient) -> Response:
    """Every version of one object in the collection (404 when the caller has none)."""
    _check_collection(request)
    query = _query(request)
    found = await _entries(client, query)
    chosen = taxii.select(found, query, object_id=request.path_params["object_id"], every_version=True)
    if not chosen:
        raise FeedError(404, "no such object")
    return _paged(chosen, query, lambda shown: {"versions": [taxii.stix_time(e.version) for e in shown]})


# -- CSAF trusted provider -----------------------------------------------------------------------

CSAF_ROOT = "/.well-known/csaf"
PROVIDER_SCHEMA = "https://docs.oasis-open.org/csaf/csaf/v2.1/schema/provider.json"
CSAF_SCHEMA = "https://docs.oasis-open.org/csaf/csaf/v2.1/schema/csaf.json"
ROLIE_CATEGORY = {"scheme": "urn:ietf:params:rolie:category:information-type", "term": "csaf"}
# TLP 2.0 labels as CSAF 2.1 names them, and as each names its folder and feed.
TLP_SLUGS = {
    label: label.lower().replace("+", "-") for label in ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
}
TLP_BY_SLUG = {slug: label for label, slug in TLP_SLUGS.items()}
ADVISORY_PREFIX = "preflight-"
HASHES = {".sha256": hashlib.sha256, ".sha512": hashlib.sha512}


@dataclass(frozen=True)
class Advisory:
    """One CSAF 2.1 document of the caller's view, as the clearinghouse exported it."""

    raw: bytes
    document: dict[str, Any]
    filename: str

    @property
    def tracking(self) -> dict[str, Any]:
        tracking: dict[str, Any] = self.document["document"]["tracking"]
        return tracking

    @property
    def tlp(self) -> str:
        return str(self.document["document"]["distribution"]["tlp"]["label"])

    @property
    def path(self) -> str:
        """Its path under its TLP folder: `<year of initial release>/<file name>`."""
        return f"{str(self.tracking['initial_release_date'])[:4]}/{self.filename}"

    def url(self, base: str) -> str:
        return f"{base}{CSAF_ROOT}/{TLP_SLUGS[self.tlp]}/{self.path}"


def _advisory(exported: clearinghouse_pb2.ExportFindingResponse) -> Advisory:
    return Advisory(exported.document, json.loads(exported.document), exported.filename)


async def _advisories(client: AsyncClearinghouseClient) -> list[Advisory]:
    """The CSAF 2.1 document of every finding the caller may see, newest change first."""
    findings = [f async for f in client.iter_findings(page_size=500)]
    limit = asyncio.Semaphore(EXPORTS_AT_ONCE)

    async def export(finding: clearinghouse_pb2.Finding) -> Advisory:
        async with limit:
            return _advisory(
                await client.export_finding(finding.finding_id, clearinghouse_pb2.EXPORT_FORMAT_CSAF)
            )

    found = await asyncio.gather(*(export(f) for f in findings))
    return sorted(found, key=lambda a: (str(a.tracking["current_release_date"]), a.filename), reverse=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _signer(request: Request) -> OpenPgpSigner | None:
    signer: OpenPgpSigner | None = request.app.state.csaf_signer
    return signer


def _plain_refusal(refused: FeedError) -> Response:
    headers = {"WWW-Authenticate": CHALLENGE} if refused.status == 401 else None
    return PlainTextResponse(refused.title, refused.status, headers=headers)


def csaf_endpoint(feed: Feed) -> Callable[[Request], Awaitable[Response]]:
    """A CSAF provider endpoint: the caller's token (else 401), each refusal as a plain-text status."""
    return _guarded(feed, _plain_refusal)


def _csaf_json(body: Mapping[str, Any]) -> Response:
    return Response(json.dumps(body, indent=2), media_type="application/json")


@csaf_endpoint
async def provider_metadata(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The caller's provider metadata: a ROLIE feed and a folder per TLP label, and the signing key
    (role `csaf_trusted_provider` when documents are signed, else `csaf_provider`)."""
    advisories = await _advisories(client)
    base = _base(request)
    updated = str(advisories[0].tracking["current_release_date"]) if advisories else taxii.stix_time(_now())
    signer = _signer(request)
    publisher = (
        advisories[0].document["document"]["publisher"]
        if advisories
        else {"category": "coordinator", "name": "Preflight clearinghouse", "namespace": base}
    )
    feeds = [
        {
            "last_updated": updated,
            "summary": f"The TLP:{label} advisories shared with you.",
            "tlp_label": label,
            "url": f"{base}{CSAF_ROOT}/feed-tlp-{slug}.json",
        }
        for label, slug in TLP_SLUGS.items()
    ]
    directories = [
        {"directory": {"tlp_label": label, "url": f"{base}{CSAF_ROOT}/{slug}/"}}
        for label, slug in TLP_SLUGS.items()
    ]
    metadata: dict[str, Any] = {
        "$schema": PROVIDER_SCHEMA,
        "canonical_url": f"{base}{CSAF_ROOT}/provider-metadata.json",
        "distributions": [{"rolie": {"feeds": feeds}}, *directories],
        "last_updated": updated,
        "list_on_CSAF_aggregators": False,
        "metadata_version": "2.1",
        "mirror_on_CSAF_aggregators": False,
        "publisher": publisher,
        "role": "csaf_trusted_provider" if signer else "csaf_provider",
    }
    if signer:
        url = f"{base}{CSAF_ROOT}/openpgp/{signer.fingerprint}.asc"
        metadata["public_openpgp_keys"] = [{"fingerprint": signer.fingerprint, "url": url}]
    return _csaf_json(metadata)


def _tlp(slug: str) -> str:
    label = TLP_BY_SLUG.get(slug)
    if label is None:
        raise FeedError(404, "no such TLP label")
    return label


@csaf_endpoint
async def rolie_feed(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The ROLIE feed of the caller's advisories of one TLP label."""
    label = _tlp(request.path_params["tlp"])
    base = _base(request)
    signed = _signer(request) is not None
    entries = []
    advisories = [a for a in await _advisories(client) if a.tlp == label]
    for advisory in advisories:
        url = advisory.url(base)
        links = [{"rel": "self", "href": url}, {"rel": "hash", "href": f"{url}.sha512"}]
        if signed:
            links.append({"rel": "signature", "href": f"{url}.asc"})
        entries.append(
            {
                "id": advisory.tracking["id"],
                "title": advisory.document["document"]["title"],
                "link": links,
                "published": advisory.tracking["initial_release_date"],
                "updated": advisory.tracking["current_release_date"],
                "content": {"type": "application/json", "src": url},
                "format": {"schema": CSAF_SCHEMA, "version": "2.1"},
            }
        )
    slug = TLP_SLUGS[label]
    feed = {
        "id": f"preflight-csaf-feed-tlp-{slug}",
        "title": f"Preflight CSAF feed (TLP:{label})",
        "link": [{"rel": "self", "href": f"{base}{CSAF_ROOT}/feed-tlp-{slug}.json"}],
        "category": [ROLIE_CATEGORY],
        "updated": advisories[0].tracking["current_release_date"] if advisories else taxii.stix_time(_now()),
        "entry": entries,
    }
    return _csaf_json({"feed": feed})


async def _one_advisory(request: Request, client: AsyncClearinghouseClient, name: str) -> Advisory:
    """The advisory `name` at its canonical path (404 unless the caller may see it there)."""
    label = _tlp(request.path_params["tlp"])
    finding_id = name.removeprefix(ADVISORY_PREFIX).removesuffix(".json")
    if not (name.startswith(ADVISORY_PREFIX) and name.endswith(".json") and finding_id):
        raise FeedError(404, "no such advisory")
    exported = await client.export_finding(finding_id, clearinghouse_pb2.EXPORT_FORMAT_CSAF)
    advisory = _advisory(exported)
    if advisory.tlp != label or advisory.path != f"{request.path_params['year']}/{name}":
        raise FeedError(404, "no such advisory")
    return advisory


@csaf_endpoint
async def advisory_file(request: Request, client: AsyncClearinghouseClient) -> Response:
    """An advisory (`….json`), its SHA-256 or SHA-512 (`.sha256`, `.sha512`: the digest and the file
    name, as `sha512sum` writes them) or its detached OpenPGP signature (`.asc`)."""
    file = request.path_params["file"]
    suffix = next((s for s in (*HASHES, ".asc") if file.endswith(s)), "")
    advisory = await _one_advisory(request, client, file.removesuffix(suffix) if suffix else file)
    if not suffix:
        return Response(advisory.raw, media_type="application/json")
    if suffix == ".asc":
        signer = _signer(request)
        if signer is None:
            raise FeedError(404, "documents are not signed here")
        return PlainTextResponse(await signer.sign(advisory.raw), media_type="application/pgp-signature")
    return PlainTextResponse(f"{HASHES[suffix](advisory.raw).hexdigest()}  {advisory.filename}\n")


@csaf_endpoint
async def folder_index(request: Request, client: AsyncClearinghouseClient) -> Response:
    """`index.txt` (every advisory's path in the TLP folder, a line each) or `changes.csv` (path and
    last change, newest first) of the caller's advisories of one TLP label."""
    label = _tlp(request.path_params["tlp"])
    if request.path_params["file"] not in ("index.txt", "changes.csv"):
        raise FeedError(404, "no such file")
    advisories = [a for a in await _advisories(client) if a.tlp == label]
    if request.path_params["file"] == "index.txt":
        return PlainTextResponse("".join(f"{a.path}\n" for a in sorted(advisories, key=lambda a: a.path)))
    rows = "".join(f'"{a.path}","{a.tracking["current_release_date"]}"\n' for a in advisories)
    return Response(rows, media_type="text/csv")


@csaf_endpoint
async def public_key(request: Request, client: AsyncClearinghouseClient) -> Response:
    """The provider's public OpenPGP key, under its fingerprint."""
    signer = _signer(request)
    if signer is None or request.path_params["fingerprint"] != f"{signer.fingerprint}.asc":
        raise FeedError(404, "no such key")
    await _ensure_caller(client)
    return PlainTextResponse(signer.public_key, media_type="application/pgp-keys")


def routes() -> list[Route]:
    """The feeds' routes: TAXII 2.1 and the CSAF provider (GET only: anything else is 405)."""
    collection_path = f"{API_ROOT}/collections/{{collection_id}}"
    return [
        Route(f"{TAXII_ROOT}/", discovery),
        Route(f"{API_ROOT}/", api_root),
        Route(f"{API_ROOT}/collections/", collections),
        Route(f"{collection_path}/", collection),
        Route(f"{collection_path}/objects/", objects),
        Route(f"{collection_path}/objects/{{object_id}}/", one_object),
        Route(f"{collection_path}/objects/{{object_id}}/versions/", versions),
        Route(f"{collection_path}/manifest/", manifest),
        Route(f"{CSAF_ROOT}/provider-metadata.json", provider_metadata),
        Route(f"{CSAF_ROOT}/feed-tlp-{{tlp}}.json", rolie_feed),
        Route(f"{CSAF_ROOT}/openpgp/{{fingerprint}}", public_key),
        Route(f"{CSAF_ROOT}/{{tlp}}/{{file}}", folder_index),
        Route(f"{CSAF_ROOT}/{{tlp}}/{{year}}/{{file}}", advisory_file),
    ]
