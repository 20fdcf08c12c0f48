"""Fetch a submission's weights and check the declared digest before anything serves them.

An artifact is one file, or a whole model directory (its URI ends with `/`):

- a **file**: the declared SHA-256 is that of its bytes; it lands at `<dest>/<file name>`.
- a **directory**: it holds `SHA256SUMS`, the manifest of its files in `sha256sum`'s format
  (`<64 hex digits>  <relative path>` per line); the declared SHA-256 is that of the manifest's
  bytes, and each listed file must match its line. Only listed files are fetched; they land at
  `<dest>/<relative path>`. In a model folder, `find . -type f ! -name SHA256SUMS -printf '%P\\n' |
  LC_ALL=C sort | xargs -d '\\n' sha256sum > SHA256SUMS && sha256sum SHA256SUMS` writes the
  manifest and prints the digest to declare.

Sources: `s3://bucket/key` (boto3's credential chain: the pod's workload identity, or a shared
credentials file from a mounted Secret through AWS_SHARED_CREDENTIALS_FILE; AWS_ENDPOINT_URL_S3
for S3-compatible stores), `gs://bucket/object` (the GCS JSON API's media download at
PREFLIGHT_WORKER_GCS_ENDPOINT, with a token from a service-account key file named by
GOOGLE_APPLICATION_CREDENTIALS or from the metadata server of the pod's workload identity),
`https://` (a bearer token from the file PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_FILE, if set, sent
only to the hosts PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_HOSTS lists: an artifact URI is the lab's, and
the token must not reach a host the lab chose), and a local path or `file://` URI. With
PREFLIGHT_WORKER_WEIGHTS_MIRROR (a folder, e.g. a PersistentVolumeClaim's mount), an artifact
present there under its declared digest (`<mirror>/<sha256>`, a file or a directory with its
manifest) is taken from there instead.

A redirect is followed, but a credential (an Authorization header) never goes to another origin
than the one it was sent to.

Everything is written under `<dest>.partial` and moved to `dest` only once every digest matched:
a mismatch, a missing file or a malformed manifest raises WeightsError and leaves nothing at `dest`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPMessage
from pathlib import Path, PurePosixPath
from typing import IO, Protocol
from urllib.parse import quote, unquote, urlencode, urlparse

from preflight_common.config import secret

MANIFEST = "SHA256SUMS"
MIRROR_ENV = "PREFLIGHT_WORKER_WEIGHTS_MIRROR"
GCS_ENDPOINT_ENV = "PREFLIGHT_WORKER_GCS_ENDPOINT"
HTTP_TOKEN_HOSTS_ENV = "PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_HOSTS"  # noqa: S105 - a variable's name
GCS_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
# A manifest lists files, not weights: anything larger is not one.
MANIFEST_LIMIT = 1 << 20
MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
CHUNK = 1 << 20
TIMEOUT = 60.0


class WeightsError(Exception):
    """The artifact does not match what the submission declared, or is missing: a configuration error."""


class Source(Protocol):
    """Where an artifact's files are read from, by path relative to the artifact's URI."""

    def open(self, relative: str) -> IO[bytes]:
        """A stream of the file's bytes; raises WeightsError when it does not exist."""
        ...


class LocalSource:
    def __init__(self, root: str) -> None:
        self._root = root

    def open(self, relative: str) -> IO[bytes]:
        path = Path(self._root) / relative
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise WeightsError(f"weights file {path} does not exist") from None


def _origin(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.scheme, parsed.netloc.lower()


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, minus the Authorization header when the redirect leaves
    the origin it was sent to (urllib would forward it to any host the server names)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        redirected = super().redirect_request(req, fp, code, msg, headers, newurl)
        if redirected is not None and _origin(newurl) != _origin(req.full_url):
            redirected.remove_header("Authorization")
        return redirected


_OPENER = urllib.request.build_opener(_SameOriginCredentials)


def _http_get(url: str, headers: dict[str, str]) -> IO[bytes]:
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) URLs built here
        response: IO[bytes] = _OPENER.open(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404, 410):
            raise WeightsError(f"weights file {url.split('?')[0]}: HTTP {exc.code}") from None
        raise
    return response


class HttpsSource:
    def __init__(self, base: str, query: str) -> None:
        self._base = base
        self._query = f"?{query}" if query else ""
        token = secret("PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN", "")
        hosts = {h.strip().lower() for h in os.environ.get(HTTP_TOKEN_HOSTS_ENV, "").split(",") if h.strip()}
        if token and not hosts:
            raise WeightsError(
                f"{HTTP_TOKEN_HOSTS_ENV}: required with PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_FILE "
                "(the hosts the token may be sent to)"
            )
        self._headers = {"Authorization": f"Bearer {token}"} if token and _origin(base)[1] in hosts else {}

    def open(self, relative: str) -> IO[bytes]:
        return _http_get(self._base + quote(relative) + self._query, self._headers)


class S3Source:
    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # type: ignore[import-untyped]

        self._client = boto3.client("s3")
        self._bucket = bucket
        self._prefix = prefix

    def open(self, relative: str) -> IO[bytes]:
        key = self._prefix + relative
        try:
            body: IO[bytes] = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
        except self._client.exceptions.NoSuchKey:
            raise WeightsError(f"weights file s3://{self._bucket}/{key} does not exist") from None
        return body


def _service_account_token(key_file: str) -> str:
    """An access token for a service-account key: a signed JWT exchanged at the key's token URI."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = json.loads(Path(key_file).read_text(encoding="utf-8"))
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise WeightsError(f"{key_file}: not an RSA service-account key")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": key["client_email"],
        "scope": GCS_SCOPE,
        "aud": key["token_uri"],
        "iat": now,
        "exp": now + 600,
    }
    header = {"alg": "RS256", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    body = urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": f"{signing_input}.{b64(signature)}",
        }
    ).encode()
    request = urllib.request.Request(key["token_uri"], data=body, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - the key's token URI
        return str(json.load(response)["access_token"])


def _metadata_token() -> str:
    """An access token of the pod's workload identity, from the metadata server (GCE_METADATA_HOST)."""
    host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
    url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
    with _http_get(url, {"Metadata-Flavor": "Google"}) as response:
        return str(json.load(response)["access_token"])


class GcsSource:
    def __init__(self, bucket: str, prefix: str) -> None:
        self._endpoint = os.environ.get(GCS_ENDPOINT_ENV, "https://storage.googleapis.com").rstrip("/")
        self._bucket = bucket
        self._prefix = prefix
        key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
        token = _service_account_token(key_file) if key_file else _metadata_token()
        self._headers = {"Authorization": f"Bearer {token}"}

    def open(self, relative: str) -> IO[bytes]:
        name = quote(self._prefix + relative, safe="")
        url = f"{self._endpoint}/storage/v1/b/{quote(self._bucket, safe='')}/o/{name}?alt=media"
        return _http_get(url, self._headers)


def source_for(uri: str) -> tuple[Source, str]:
    """The source of `uri` and the artifact's name within it ("" for a directory's root)."""
    parsed = urlparse(uri)
    directory, _, name = parsed.path.rpartition("/")
    name = unquote(name)
    if parsed.scheme in ("", "file"):
        return LocalSource(directory or "/"), name
    if parsed.scheme == "https":
        return HttpsSource(f"https://{parsed.netloc}{directory}/", parsed.query), name
    key = parsed.path.lstrip("/")
    prefix = key.rpartition("/")[0] + "/" if "/" in key else ""
    if parsed.scheme == "s3":
        return S3Source(parsed.netloc, prefix), name
    if parsed.scheme == "gs":
        return GcsSource(parsed.netloc, prefix), name
    raise WeightsError(f"weights artifact scheme {parsed.scheme!r} is not supported (s3, gs, https, a path)")


def _copy(stream: IO[bytes], target: Path) -> str:
    """Write `stream` to `target`; its SHA-256 (hex)."""
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with stream, target.open("wb") as out:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def parse_manifest(text: bytes) -> list[tuple[str, str]]:
    """(sha256, relative path) per line of a SHA256SUMS manifest; raises WeightsError naming the line."""
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), start=1):
        match = MANIFEST_LINE.match(line)
        if not match:
            raise WeightsError(f"{MANIFEST} line {number}: expected '<sha256>  <relative path>'")
        path = PurePosixPath(match.group(2))
        if path.is_absolute() or ".." in path.parts or str(path) in (".", MANIFEST) or str(path) in seen:
            raise WeightsError(
                f"{MANIFEST} line {number}: {match.group(2)!r} is not a new relative file path"
            )
        seen.add(str(path))
        entries.append((match.group(1), str(path)))
    if not entries:
        raise WeightsError(f"{MANIFEST} lists no files")
    return entries


@contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """A fresh staging folder beside `dest`, moved to `dest` on success and removed on failure."""
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rename(dest)


def fetch(uri: str, sha256: str, dest: Path) -> list[Path]:
    """Fetch the artifact at `uri` (or its copy in the mirror) into `dest`, checked against `sha256`;
    the files written. Raises WeightsError (nothing at `dest`) when a digest differs."""
    declared = sha256.lower()
    mirror = os.environ.get(MIRROR_ENV, "")
    mirrored = Path(mirror) / declared if mirror else None
    source: Source
    if mirrored is not None and mirrored.is_dir():
        source, name = LocalSource(str(mirrored)), ""
    elif mirrored is not None and mirrored.is_file():
        source, name = _Renamed(LocalSource(mirror), declared), Path(urlparse(uri).path).name or declared
    else:
        source, name = source_for(uri)
    with _staged(dest) as staging:
        if name:
            if _copy(source.open(name), staging / name) != declared:
                raise WeightsError("weights artifact SHA-256 does not match the submission")
            return [dest / name]
        manifest = source.open(MANIFEST).read(MANIFEST_LIMIT + 1)
        if len(manifest) > MANIFEST_LIMIT or hashlib.sha256(manifest).hexdigest() != declared:
            raise WeightsError(f"weights {MANIFEST} SHA-256 does not match the submission")
        entries = parse_manifest(manifest)
        for expected, relative in entries:
            if _copy(source.open(relative), staging / relative) != expected:
                raise WeightsError(f"weights file {relative}: SHA-256 does not match {MANIFEST}")
        (staging / MANIFEST).write_bytes(manifest)
    return [dest / relative for _, relative in entries]


class _Renamed:
    """A mirrored single file, stored under its digest, read under the artifact's own name."""

    def __init__(self, source: Source, stored: str) -> None:
        self._source = source
        self._stored = stored

    def open(self, relative: str) -> IO[bytes]:
        return self._source.open(self._stored)
