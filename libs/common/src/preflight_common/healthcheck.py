"""`preflight-health TARGET`: whether a Preflight service at TARGET answers its gRPC health check SERVING.

Exit status 0 when it does, 1 otherwise (the status it answered, or why no answer came, on
stderr). It calls as every Preflight client does: over TLS verified against the CA in
`PREFLIGHT_GRPC_TLS_CA` when set (`channels.credentials_from_env`), plaintext otherwise. The
chart's `helm test` runs it against each service of a release.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from preflight_common.channels import aio_channel, credentials_from_env
from preflight_common.config import ConfigError


async def status_of(target: str, service: str = "", timeout: float = 10.0) -> str:
    """The health status name TARGET answers for `service` ("" is the server as a whole)."""
    async with aio_channel(target, credentials_from_env()) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="preflight-health", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the service's gRPC server")
    parser.add_argument("--service", default="", help="health service name (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    try:
        status = asyncio.run(status_of(args.target, args.service, args.timeout))
    except grpc.aio.AioRpcError as exc:
        print(f"{args.target}: no health answer: {exc.code().name}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"preflight-health: {exc}", file=sys.stderr)
        return 1
    print(f"{args.target}: {status}", file=sys.stderr)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
