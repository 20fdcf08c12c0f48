"""Local stand-ins for stakeholders' receivers: a webhook endpoint and an SMTP server.

    python deploy/local/sinks.py webhook --port 18090 --out run/stack/sinks/webhook.jsonl
    python deploy/local/sinks.py smtp --port 18025 --out run/stack/sinks/mail.jsonl

Each appends one JSON object per delivery to `--out`. The webhook sink verifies the
`Preflight-Signature` header with the secret in the file PREFLIGHT_SINK_SECRET_FILE names (as an operator's
endpoint would) and answers 401 to a bad signature.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from preflight_common.config import secret
from preflight_notifier.domain.delivery import verify_signature


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def serve_webhook(port: int, out: Path, secret: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            signed = verify_signature(
                secret, self.headers.get("Preflight-Signature", ""), body, int(time.time())
            )
            if signed:
                _append(
                    out,
                    {
                        "path": self.path,
                        "delivery_id": self.headers.get("Preflight-Delivery-Id"),
                        "signature_verified": True,
                        "body": json.loads(body),
                    },
                )
            self.send_response(204 if signed else 401)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            print(f"webhook sink: {format % args}", flush=True)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def serve_smtp(port: int, out: Path) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = message_from_bytes(envelope.content, policy=policy.default)
            body = message.get_body(preferencelist=("plain",))
            _append(
                out,
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message["Subject"]),
                    "body": body.get_content() if body is not None else "",
                },
            )
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"smtp sink listening on 127.0.0.1:{port}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["webhook", "smtp"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.kind == "webhook":
        serve_webhook(args.port, args.out, secret("PREFLIGHT_SINK_SECRET").encode())
    else:
        serve_smtp(args.port, args.out)


if __name__ == "__main__":
    main()
