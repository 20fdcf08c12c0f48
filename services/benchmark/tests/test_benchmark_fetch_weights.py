"""`preflight-worker fetch-weights` against real stores on loopback: S3 (moto in server mode), HTTPS,
the GCS JSON API (a loopback server speaking its OAuth token exchange and media download), and a
mirror folder; whole model directories through their SHA256SUMS manifest; nothing is left to serve
when a digest differs."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto.server import ThreadedMotoServer
from preflight_benchmark.entrypoints import worker_cli
from preflight_testkit.tls import TestAuthority

CONFIG_ERROR = 78
MODEL = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "model-00001-of-00002.safetensors": b"\x01" * 300_000,
    "model-00002-of-00002.safetensors": b"\x02" * 200_000,
    "tokenizer/tokenizer.json": b'{"version": "1.0"}',
}


def manifest_of(files: dict[str, bytes]) -> bytes:
    """SHA256SUMS as `sha256sum` writes it, in C-locale path order."""
    return "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files)).encode()


MANIFEST = manifest_of(MODEL)
MODEL_DIGEST = hashlib.sha256(MANIFEST).hexdigest()


def fetch(monkeypatch: pytest.MonkeyPatch, uri: str, sha256: str, dest: Path) -> int:
    assignment = {
        "job": {"jobId": "bj-" + "a" * 32, "access": {"weights": {"artifactUri": uri, "sha256": sha256}}},
        "attempt": 1,
    }
    monkeypatch.setenv("PREFLIGHT_WORKER_ASSIGNMENT", json.dumps(assignment))
    return worker_cli.main(["fetch-weights", "--dest", str(dest)])


def assert_model_served_from(dest: Path) -> None:
    for relative, content in MODEL.items():
        assert (dest / relative).read_bytes() == content
    assert (dest / "SHA256SUMS").read_bytes() == MANIFEST


def assert_nothing_served(dest: Path) -> None:
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".partial").exists()


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # Credentials as a mounted Secret gives them: a file, never variables holding the keys.
        credentials = tmp_path / "aws-credentials"
        credentials.write_text(
            "[default]\naws_access_key_id = AKIDWEIGHTS\naws_secret_access_key = weights\n"
        )
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
        client = boto3.client("s3")
        client.create_bucket(Bucket="weights")
        yield client
    finally:
        server.stop()


@pytest.mark.slow
def test_a_model_directory_is_fetched_from_s3_and_verified_file_by_file(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for relative, content in MODEL.items():
        s3.put_object(Bucket="weights", Key=f"lab/model-v1/{relative}", Body=content)
    s3.put_object(Bucket="weights", Key="lab/model-v1/SHA256SUMS", Body=MANIFEST)
    s3.put_object(Bucket="weights", Key="lab/model-v1/unlisted.bin", Body=b"not in the manifest")
    dest = tmp_path / "models" / "weights"
    assert fetch(monkeypatch, "s3://weights/lab/model-v1/", MODEL_DIGEST, dest) == 0
    assert_model_served_from(dest)
    assert not (dest / "unlisted.bin").exists(), "only the manifest's files are fetched"

    # One shard changed after the digest was declared: the attempt is a configuration error and
    # nothing is left for the model server.
    s3.put_object(Bucket="weights", Key="lab/model-v1/model-00002-of-00002.safetensors", Body=b"\x03" * 10)
    assert fetch(monkeypatch, "s3://weights/lab/model-v1/", MODEL_DIGEST, dest) == CONFIG_ERROR
    assert_nothing_served(dest)
    # A manifest that is not the declared one.
    assert fetch(monkeypatch, "s3://weights/lab/model-v1/", "0" * 64, dest) == CONFIG_ERROR
    assert_nothing_served(dest)


@pytest.mark.slow
def test_a_single_file_artifact_is_fetched_from_s3_and_a_missing_one_is_a_configuration_error(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"GGUF" + b"\x00" * 4096
    s3.put_object(Bucket="weights", Key="lab/model.gguf", Body=content)
    dest = tmp_path / "weights"
    assert fetch(monkeypatch, "s3://weights/lab/model.gguf", hashlib.sha256(content).hexdigest(), dest) == 0
    assert (dest / "model.gguf").read_bytes() == content
    assert fetch(monkeypatch, "s3://weights/lab/absent.gguf", "0" * 64, dest) == CONFIG_ERROR
    assert_nothing_served(dest)


class Recorder(BaseHTTPRequestHandler):
    """Serves `files` by path, answering 401 to a request without the expected Authorization."""

    files: dict[str, bytes] = {}
    authorization = ""
    seen: list[tuple[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization", "") != self.authorization:
            self.send_response(401)
            self.end_headers()
            return
        body = self.files.get(unquote(urlparse(self.path).path))
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def http_server(
    handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A server on loopback in a thread; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if context else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def https_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a certificate of a test authority the fetcher trusts."""
    authority = TestAuthority()
    issued = authority.issue("localhost")
    (tmp_path / "server.crt").write_bytes(issued.certificate)
    (tmp_path / "server.key").write_bytes(issued.key)
    (tmp_path / "ca.crt").write_bytes(authority.pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.crt"))
    return context


def test_a_file_is_fetched_over_https_with_a_bearer_token_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = https_context(tmp_path, monkeypatch)
    content = b"GGUF" + b"\x07" * 10_000
    token = tmp_path / "weights-token"
    token.write_text("weights-download-token\n")

    class Handler(Recorder):
        files = {"/releases/v1/model.gguf": content}
        authorization = "Bearer weights-download-token"
        seen: list[tuple[str, str]] = []

    monkeypatch.setenv("PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_FILE", str(token))
    dest = tmp_path / "weights"
    with http_server(Handler, context) as base:
        monkeypatch.setenv("PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_HOSTS", urlparse(base).netloc)
        uri = f"{base}/releases/v1/model.gguf"
        assert fetch(monkeypatch, uri, hashlib.sha256(content).hexdigest(), dest) == 0
        assert (dest / "model.gguf").read_bytes() == content
        assert Handler.seen == [("/releases/v1/model.gguf", "Bearer weights-download-token")]
        assert fetch(monkeypatch, uri, hashlib.sha256(b"other").hexdigest(), dest) == CONFIG_ERROR
        assert_nothing_served(dest)
    # The token is a file's: the variable itself is refused.
    monkeypatch.setenv("PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN", "in-the-environment")
    assert fetch(monkeypatch, "https://127.0.0.1:9/model.gguf", "0" * 64, dest) == CONFIG_ERROR


def test_the_https_token_goes_only_to_its_hosts_never_to_a_lab_chosen_one_nor_through_a_redirect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = https_context(tmp_path, monkeypatch)
    content = b"GGUF" + b"\x08" * 10_000
    digest = hashlib.sha256(content).hexdigest()
    token = tmp_path / "weights-token"
    token.write_text("weights-download-token\n")
    monkeypatch.setenv("PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_FILE", str(token))

    class Elsewhere(Recorder):
        """Another origin (a lab's host, a CDN): serves only requests without a credential."""

        files = {"/model.gguf": content}
        authorization = ""
        seen: list[tuple[str, str]] = []

    with http_server(Elsewhere, context) as elsewhere:

        class Store(Recorder):
            """The token's host, which redirects its download elsewhere."""

            seen: list[tuple[str, str]] = []

            def do_GET(self) -> None:
                self.seen.append((self.path, self.headers.get("Authorization", "")))
                self.send_response(302)
                self.send_header("Location", f"{elsewhere}/model.gguf")
                self.end_headers()

        with http_server(Store, context) as store:
            # A token with no hosts to send it to is a configuration error.
            assert fetch(monkeypatch, f"{store}/model.gguf", digest, tmp_path / "none") == CONFIG_ERROR
            monkeypatch.setenv("PREFLIGHT_WORKER_WEIGHTS_HTTP_TOKEN_HOSTS", urlparse(store).netloc)
            assert fetch(monkeypatch, f"{store}/model.gguf", digest, tmp_path / "redirected") == 0
            assert fetch(monkeypatch, f"{elsewhere}/model.gguf", digest, tmp_path / "direct") == 0
    assert Store.seen == [("/model.gguf", "Bearer weights-download-token")]
    assert Elsewhere.seen == [("/model.gguf", ""), ("/model.gguf", "")]
    assert (tmp_path / "redirected" / "model.gguf").read_bytes() == content


def test_a_model_directory_is_fetched_through_the_gcs_json_api_with_a_service_account_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    objects = {f"/storage/v1/b/weights/o/lab/model-v1/{p}": c for p, c in MODEL.items()}
    objects["/storage/v1/b/weights/o/lab/model-v1/SHA256SUMS"] = MANIFEST
    tokens: list[dict[str, Any]] = []

    class Gcs(Recorder):
        files = objects
        authorization = "Bearer gcs-access-token"
        seen: list[tuple[str, str]] = []

        def do_GET(self) -> None:
            assert parse_qs(urlparse(self.path).query) == {"alt": ["media"]}, self.path
            super().do_GET()

        def do_POST(self) -> None:
            """The OAuth token endpoint: a JWT bearer grant signed by the service account's key."""
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            header, claims, signature = form["assertion"][0].split(".")
            padded = signature + "=" * (-len(signature) % 4)
            public.verify(
                base64.urlsafe_b64decode(padded),
                f"{header}.{claims}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            tokens.append(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))))
            body = json.dumps({"access_token": "gcs-access-token", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    dest = tmp_path / "weights"
    with http_server(Gcs) as base:
        # The key as a mounted Secret holds it: a file, named by GOOGLE_APPLICATION_CREDENTIALS.
        key_file = tmp_path / "service-account.json"
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_file.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "client_email": "weights-reader@lab.iam.gserviceaccount.com",
                    "private_key": pem.decode(),
                    "token_uri": f"{base}/token",
                }
            )
        )
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        monkeypatch.setenv("PREFLIGHT_WORKER_GCS_ENDPOINT", base)
        assert fetch(monkeypatch, "gs://weights/lab/model-v1/", MODEL_DIGEST, dest) == 0
        assert_model_served_from(dest)
        assert tokens[0]["iss"] == "weights-reader@lab.iam.gserviceaccount.com"
        assert tokens[0]["scope"] == "https://www.googleapis.com/auth/devstorage.read_only"
        # Object names are one path segment of the API's URL: their slashes are escaped.
        assert (
            "/storage/v1/b/weights/o/lab%2Fmodel-v1%2FSHA256SUMS?alt=media",
            "Bearer gcs-access-token",
        ) in (Gcs.seen)
        Gcs.files = {**objects, "/storage/v1/b/weights/o/lab/model-v1/config.json": b"{}"}
        assert fetch(monkeypatch, "gs://weights/lab/model-v1/", MODEL_DIGEST, dest) == CONFIG_ERROR
        assert_nothing_served(dest)


def test_an_artifact_in_the_mirror_under_its_digest_is_taken_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PersistentVolumeClaim staged with the artifact: the published URI is never contacted."""
    mirror = tmp_path / "mirror"
    for relative, content in MODEL.items():
        (mirror / MODEL_DIGEST / relative).parent.mkdir(parents=True, exist_ok=True)
        (mirror / MODEL_DIGEST / relative).write_bytes(content)
    (mirror / MODEL_DIGEST / "SHA256SUMS").write_bytes(MANIFEST)
    single = b"GGUF" + b"\x05" * 100
    (mirror / hashlib.sha256(single).hexdigest()).write_bytes(single)
    monkeypatch.setenv("PREFLIGHT_WORKER_WEIGHTS_MIRROR", str(mirror))
    unreachable = "https://weights.invalid/lab/model-v1/"
    assert fetch(monkeypatch, unreachable, MODEL_DIGEST, tmp_path / "a") == 0
    assert_model_served_from(tmp_path / "a")
    single_digest = hashlib.sha256(single).hexdigest()
    assert fetch(monkeypatch, "s3://nowhere/lab/model.gguf", single_digest, tmp_path / "b") == 0
    assert (tmp_path / "b" / "model.gguf").read_bytes() == single
    # A copy in the mirror is checked like any other.
    (mirror / MODEL_DIGEST / "config.json").write_bytes(b"{}")
    assert fetch(monkeypatch, unreachable, MODEL_DIGEST, tmp_path / "c") == CONFIG_ERROR
    assert_nothing_served(tmp_path / "c")


@pytest.mark.parametrize(
    "line",
    [
        f"{'1' * 64}  ../outside",
        f"{'1' * 64}  /etc/passwd",
        f"{'1' * 64}  SHA256SUMS",
        "not a digest  config.json",
    ],
)
def test_a_manifest_naming_a_path_outside_the_model_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    manifest = (line + "\n").encode()
    (model / "SHA256SUMS").write_bytes(manifest)
    dest = tmp_path / "weights"
    assert fetch(monkeypatch, f"file://{model}/", hashlib.sha256(manifest).hexdigest(), dest) == CONFIG_ERROR
    assert_nothing_served(dest)
    assert not (tmp_path / "outside").exists()


def test_gcs_uses_the_workload_identity_token_of_the_metadata_server_without_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"GGUF" + b"\x09" * 1000

    class MetadataAndGcs(Recorder):
        files = {"/storage/v1/b/weights/o/model.gguf": content}
        authorization = "Bearer workload-identity-token"
        seen: list[tuple[str, str]] = []

        def do_GET(self) -> None:
            if not self.path.startswith("/computeMetadata/"):
                super().do_GET()
                return
            assert self.headers["Metadata-Flavor"] == "Google"
            assert self.path == "/computeMetadata/v1/instance/service-accounts/default/token"
            body = json.dumps({"access_token": "workload-identity-token", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    dest = tmp_path / "weights"
    with http_server(MetadataAndGcs) as base:
        monkeypatch.setenv("GCE_METADATA_HOST", base.removeprefix("http://"))
        monkeypatch.setenv("PREFLIGHT_WORKER_GCS_ENDPOINT", base)
        assert fetch(monkeypatch, "gs://weights/model.gguf", hashlib.sha256(content).hexdigest(), dest) == 0
    assert (dest / "model.gguf").read_bytes() == content
    assert MetadataAndGcs.seen == [
        ("/storage/v1/b/weights/o/model.gguf?alt=media", "Bearer workload-identity-token")
    ]
