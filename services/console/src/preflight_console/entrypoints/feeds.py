"""Feeds that operators' tools pull: a TAXII 2.1 server of the STIX exports.

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
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.sdk.aio import AsyncClearinghouseClient
from preflight.sdk.errors import PreflightError, from_rpc_error
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from preflight_console.adapters.apis import Apis
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


def taxii_endpoint(feed: Feed) -> Callable[[Request], Awaitable[Response]]:
    """A TAXII endpoint: the caller's token (else 401), an acceptable `Accept` (else 406), and the
    clearinghouse's refusals answered as TAXII errors (an unreachable service 502)."""

    async def endpoint(request: Request) -> Response:
        try:
            accept = request.headers.get("accept", "*/*")
            if not any(m in accept for m in ("application/taxii+json", "*/*", "application/*")):
                raise FeedError(406, "not acceptable", f"this server answers {TAXII_MEDIA_TYPE}")
            apis: Apis = request.app.state.console.apis
            try:
                return await feed(request, apis.clearinghouse(caller_token(request)))
            except (PreflightError, grpc.aio.AioRpcError) as exc:
                error = exc if isinstance(exc, PreflightError) else from_rpc_error(exc)
                status = HTTP_STATUS.get(error.code, 502)
                message = "a Preflight service did not answer; try again" if status == 502 else error.message
                raise FeedError(status, message) from None
        except FeedError as refused:
            return _error(refused)

    endpoint.__name__ = feed.__name__
    return endpoint


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
        filter.since.FromDatetime(query.added_after)
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


def routes() -> list[Route]:
    """The feeds' routes (GET only: anything else is 405)."""
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
    ]
