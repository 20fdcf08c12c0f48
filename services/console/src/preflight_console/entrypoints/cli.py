"""`preflight-console serve`: the web application on PREFLIGHT_CONSOLE_LISTEN."""

from __future__ import annotations

import argparse

import uvicorn
from preflight_common.cli import run_cli, service_parser
from preflight_common.telemetry import setup_telemetry

from preflight_console.config import Settings
from preflight_console.entrypoints.web import build_app


def main(argv: list[str] | None = None) -> int:
    """Run the console until SIGTERM/SIGINT; exit 2 on a configuration error."""
    parser, _ = service_parser(
        "preflight-console",
        "Preflight console: the web pages and machine feeds over the services' APIs.",
        serve="the web application",
        migrate=False,
    )
    return run_cli(parser, _serve, argv)


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    host, port = settings.host_port()
    settings.session_key()
    # Its calls to the services are traced, so their spans join the console's requests.
    setup_telemetry("preflight-console")
    app = build_app(settings)
    # Behind a TLS-terminating ingress, the scheme comes from X-Forwarded-Proto (trusted from
    # FORWARDED_ALLOW_IPS, loopback by default), so cookies are Secure over HTTPS.
    uvicorn.run(app, host=host, port=port, proxy_headers=True, server_header=False, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
