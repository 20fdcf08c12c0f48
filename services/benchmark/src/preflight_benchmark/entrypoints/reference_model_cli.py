"""`preflight-reference-model`: the scripted OpenAI-compatible model server, on loopback.

The API key clients must present is in the file PREFLIGHT_REFERENCE_MODEL_API_KEY_FILE names
(unset: no key required); PREFLIGHT_REFERENCE_MODEL_API_KEY itself is refused.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import cast

from preflight_common.config import secret

from preflight_benchmark.reference_model.script import MODES, Mode
from preflight_benchmark.reference_model.server import ReferenceModelServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preflight-reference-model",
        description="Serve the scripted reference model (OpenAI chat completions) on a loopback address. "
        "Prints the bound port on the first line of standard output.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--model-name", default="reference")
    parser.add_argument(
        "--mode", choices=MODES, default="reference", help="reference (scripted), oracle, wrong"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api_key = secret("PREFLIGHT_REFERENCE_MODEL_API_KEY", "") or None
        server = ReferenceModelServer(
            host=args.host,
            port=args.port,
            model_name=args.model_name,
            mode=cast(Mode, args.mode),
            api_key=api_key,
            delay=args.delay,
        )
    except (ValueError, OSError) as exc:
        print(f"preflight-reference-model: {exc}", file=sys.stderr)
        return 2
    print(server.port, flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
