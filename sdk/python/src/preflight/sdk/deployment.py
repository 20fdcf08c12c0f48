"""`Preflight`: one object for a whole deployment, with a client per service.

    with Preflight.from_profile() as preflight:  # or Preflight("preflight.example.gov:443", token=...)
        report = preflight.clearinghouse.get_report(submission_id=submission_id)
        preflight.clearinghouse.verify_report(report)

One channel per distinct address: a deployment behind one address (`target`) shares one channel
between its four clients; `targets` gives a service its own address.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

import grpc
from preflight.sdk import _common
from preflight.sdk._common import TLS
from preflight.sdk.aio import (
    AsyncBenchmarkClient,
    AsyncClearinghouseClient,
    AsyncIntakeClient,
    AsyncNotifierClient,
)
from preflight.sdk.client import BenchmarkClient, ClearinghouseClient, IntakeClient, NotifierClient
from preflight.sdk.config import SERVICES, ConfigError, Profile, load_profile

C = TypeVar("C")
Channel = TypeVar("Channel")


class _ServiceSlot(Generic[C]):
    """A deployment's client for the service the attribute is named after."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._service = name

    def __get__(self, deployment: _Deployment[Any], owner: type | None = None) -> C:
        client = deployment._clients.get(self._service)
        if client is None:
            raise ConfigError(
                f"no address for the {self._service} service: give `target`, or "
                f"`targets.{self._service}` in the profile (PREFLIGHT_{self._service.upper()}_TARGET)"
            )
        result: C = client
        return result


class _Deployment(Generic[Channel]):
    """The channels to a deployment's addresses and a client per service reached through them.

    `target` is the one address of every service; `targets` maps a service to its own address
    (and wins over `target`). A service with no address raises ConfigError when used. `token`,
    `tls` and `timeout` as for `preflight.sdk.Client`.
    """

    _kinds: ClassVar[Mapping[str, Callable[..., Any]]]

    def __init__(
        self,
        target: str = "",
        *,
        targets: Mapping[str, str] | None = None,
        token: str | None = None,
        tls: bool | TLS = False,
        timeout: float = _common.DEFAULT_TIMEOUT,
    ) -> None:
        unknown = sorted(set(targets or {}) - set(SERVICES))
        if unknown:
            raise ConfigError(f"unknown service {unknown[0]} (known: {', '.join(SERVICES)})")
        addresses = Profile(target=target, targets=dict(targets or {})).addresses()
        self._channels = {address: self._open(address, tls) for address in sorted(set(addresses.values()))}
        self._clients = {
            service: self._kinds[service](self._channels[address], token=token, timeout=timeout)
            for service, address in addresses.items()
        }

    def _open(self, target: str, tls: bool | TLS) -> Channel:
        raise NotImplementedError

    @classmethod
    def from_profile(cls, profile: str | Profile | None = None) -> Self:
        """From a `Profile`, or the profile of that name, or the selected one (see `preflight.sdk.config`)."""
        chosen = profile if isinstance(profile, Profile) else load_profile(profile)
        return cls(
            targets=chosen.addresses(),
            token=chosen.token(),
            tls=chosen.tls_settings(),
            timeout=chosen.timeout,
        )


class Preflight(_Deployment[grpc.Channel], _common.Closing):
    """A deployment: `.intake`, `.clearinghouse`, `.notifier`, `.benchmark` (blocking clients)."""

    intake: _ServiceSlot[IntakeClient] = _ServiceSlot()
    clearinghouse: _ServiceSlot[ClearinghouseClient] = _ServiceSlot()
    notifier: _ServiceSlot[NotifierClient] = _ServiceSlot()
    benchmark: _ServiceSlot[BenchmarkClient] = _ServiceSlot()
    _kinds = {
        "intake": IntakeClient,
        "clearinghouse": ClearinghouseClient,
        "notifier": NotifierClient,
        "benchmark": BenchmarkClient,
    }

    def _open(self, target: str, tls: bool | TLS) -> grpc.Channel:
        return _common.open_channel(target, tls)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


class AsyncPreflight(_Deployment[grpc.aio.Channel], _common.AsyncClosing):
    """Asyncio twin of `Preflight`: the same attributes with the asyncio clients."""

    intake: _ServiceSlot[AsyncIntakeClient] = _ServiceSlot()
    clearinghouse: _ServiceSlot[AsyncClearinghouseClient] = _ServiceSlot()
    notifier: _ServiceSlot[AsyncNotifierClient] = _ServiceSlot()
    benchmark: _ServiceSlot[AsyncBenchmarkClient] = _ServiceSlot()
    _kinds = {
        "intake": AsyncIntakeClient,
        "clearinghouse": AsyncClearinghouseClient,
        "notifier": AsyncNotifierClient,
        "benchmark": AsyncBenchmarkClient,
    }

    def _open(self, target: str, tls: bool | TLS) -> grpc.aio.Channel:
        return _common.open_aio_channel(target, tls)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
