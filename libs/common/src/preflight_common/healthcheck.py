"""`preflight-health TARGET`: whether a Preflight service at TARGET answers its gRPC health check SERVING.

Exit status 0 when it does, 1 otherwise (the status it answered, or why no answer came, on
stderr). With `--read SERVICE` it then also calls that service's probe read (`auth.PROBE_METHODS`:
intake's IntrospectToken of the token itself, the benchmark's ListJobs, the clearinghouse's
ListReports, the notifier's ListAlerts, one small page) with the token in the file
`PREFLIGHT_PROBE_TOKEN_FILE` names — a `probe` principal's — and passes only if it answers OK:
the service is up, reaches intake and authenticates the token. It calls as every Preflight
client does: over TLS verified against the CA in `PREFLIGHT_GRPC_TLS_CA` when set
(`channels.credentials_from_env`), plaintext otherwise. The chart's `helm test` runs it against
each service of a release.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.sdk.aio import AsyncBenchmarkClient, AsyncClearinghouseClient, AsyncNotifierClient
from preflight.sdk.errors import PreflightError

from preflight_common.channels import aio_channel, credentials_from_env
from preflight_common.config import ConfigError, secret

READS = ("intake", "benchmark", "clearinghouse", "notifier")
"""The services whose probe read `--read` calls."""


async def status_of(target: str, service: str = "", timeout: float = 10.0) -> str:
    """The health status name TARGET answers for `service` ("" is the server as a whole)."""
    async with aio_channel(target, credentials_from_env()) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def probe_read(target: str, service: str, token: str, timeout: float = 10.0) -> str | None:
    """Why `service`'s probe read at TARGET, called with `token`, failed (a status name); None
    when it answered OK."""
    async with aio_channel(target, credentials_from_env()) as channel:
        try:
            if service == "intake":
                await identity_pb2_grpc.IdentityServiceStub(channel).IntrospectToken(
                    identity_pb2.IntrospectTokenRequest(token=token),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=timeout,
                )
            elif service == "benchmark":
                await AsyncBenchmarkClient(channel, token=token, timeout=timeout).list_jobs(page_size=1)
            elif service == "clearinghouse":
                await AsyncClearinghouseClient(channel, token=token, timeout=timeout).list_reports(
                    page_size=1
                )
            else:
                await AsyncNotifierClient(channel, token=token, timeout=timeout).list_alerts(page_size=1)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        except PreflightError as exc:
            return str(exc.code.name)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="preflight-health", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the service's gRPC server")
    parser.add_argument("--service", default="", help="health service name (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    parser.add_argument(
        "--read",
        choices=READS,
        help="then call this service's probe read with the token of PREFLIGHT_PROBE_TOKEN_FILE",
    )
    args = parser.parse_args(argv)
    try:
        token = secret("PREFLIGHT_PROBE_TOKEN") if args.read else ""
        status = asyncio.run(status_of(args.target, args.service, args.timeout))
    except grpc.aio.AioRpcError as exc:
        print(f"{args.target}: no health answer: {exc.code().name}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"preflight-health: {exc}", file=sys.stderr)
        return 1
    print(f"{args.target}: {status}", file=sys.stderr)
    if status != "SERVING":
        return 1
    if args.read:
        failure = asyncio.run(probe_read(args.target, args.read, token, args.timeout))
        print(f"{args.target}: {args.read}'s probe read: {failure or 'OK'}", file=sys.stderr)
        return 0 if failure is None else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
