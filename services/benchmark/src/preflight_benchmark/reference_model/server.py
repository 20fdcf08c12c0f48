"""The reference model's HTTP server: OpenAI-compatible ``POST /v1/chat/completions`` on loopback."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from preflight_benchmark.reference_model.script import Mode, answer
from preflight_benchmark.suites.datasets import challenge_id

log = logging.getLogger(__name__)


def _text(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _HTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away before its answer (a worker killed mid-request) is expected.
        if isinstance(sys.exception(), ConnectionError):
            log.debug("%s went away before its answer", client_address)
            return
        super().handle_error(request, client_address)


class ReferenceModelServer:
    """Serves the scripted model on `host:port` (loopback only; port 0 picks a free port).

    `api_key`, when given, must be presented as ``Authorization: Bearer <key>``;
    other requests get 401. `delay` seconds pass before each answer. `requests` counts
    the authorised requests received, answered or not, and `requests_by_sample` those
    naming each sample ("vd-007"). The answers to the samples in `hold` wait until
    `release()` (or `stop()`), so a run can be caught with those samples unanswered.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "reference",
        mode: Mode = "reference",
        api_key: str | None = None,
        delay: float = 0.0,
        hold: Collection[str] = (),
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"host must be a loopback address, not {host}")
        self.model_name, self.mode, self.delay = model_name, mode, delay
        self._host = host
        self._api_key = api_key
        self.requests = 0
        self.requests_by_sample: Counter[str] = Counter()
        self._hold = frozenset(hold)
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def start(self) -> ReferenceModelServer:
        """Serve from a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="reference-model", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Answer the held samples, those waiting and those still to come."""
        self._released.set()

    def stop(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def _authorized(self, header: str | None) -> bool:
        if self._api_key is None:
            return True
        expected = f"Bearer {self._api_key}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = _text(body.get("messages") or [])
        reply = answer(prompt, self.mode)
        sample = challenge_id(prompt)
        with self._lock:
            self.requests += 1
            if sample is not None:
                self.requests_by_sample[sample] += 1
        if sample in self._hold:
            self._released.wait()
        if self.delay:
            time.sleep(self.delay)
        prompt_tokens, completion_tokens = _tokens(prompt), _tokens(reply)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: HTTPStatus, message: str) -> None:
                self._reply(status, {"error": {"message": message, "type": "invalid_request_error"}})

            def do_GET(self) -> None:
                if not server._authorized(self.headers.get("Authorization")):
                    self._error(HTTPStatus.UNAUTHORIZED, "invalid api key")
                elif self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._reply(
                        HTTPStatus.OK,
                        {"object": "list", "data": [{"id": server.model_name, "object": "model"}]},
                    )
                else:
                    self._error(HTTPStatus.NOT_FOUND, "not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not server._authorized(self.headers.get("Authorization")):
                    self._error(HTTPStatus.UNAUTHORIZED, "invalid api key")
                    return
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._error(HTTPStatus.NOT_FOUND, "not found")
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._error(HTTPStatus.BAD_REQUEST, "body is not JSON")
                    return
                if body.get("stream"):
                    self._error(HTTPStatus.BAD_REQUEST, "streaming is not supported")
                    return
                self._reply(HTTPStatus.OK, server._complete(body))

        return Handler
