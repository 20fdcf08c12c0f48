"""One dispatcher leader among the replicas: a coordination.k8s.io/v1 Lease, held and renewed.

The replica that holds the Lease adopts the jobs left RUNNING and creates Jobs;
the others stand by. The holder writes `renewTime` every `retry_period`; it
leads only while its last successful write is younger than `renew_deadline`
(two thirds of the Lease's duration), so it stops acting before anyone may take
over. A stand-by takes the Lease over once the record it last read has not
changed for `leaseDurationSeconds` by its own clock (no comparison of two
machines' clocks), with an optimistic write (resourceVersion): of two
stand-bys racing for an expired Lease, one wins. On shutdown the holder
releases the Lease (no holder) so a stand-by takes over at its next try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from preflight_common.liveness import Liveness

log = logging.getLogger(__name__)

API_VERSION = "coordination.k8s.io/v1"


def _micro_time(moment: datetime) -> str:
    """A MicroTime as the API server parses it (the client's own serialisation drops zero microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElection:
    """Holds or waits for the Lease `name` in `namespace` as `identity`; `leading()` says whether it leads."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_seconds: int = 15,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Any: Leases are written as plain dicts (their MicroTimes formatted here), which the
        # client's stubs do not admit, and read fields are optional in the stubs.
        self._api: Any = client.CoordinationV1Api(api_client)
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._lease_seconds = lease_seconds
        self.renew_deadline = lease_seconds * 2 / 3
        self.retry_period = lease_seconds / 5
        self._monotonic = monotonic
        self._renewed_at: float | None = None
        # The holder and renewTime last read, and when (monotonic): the expiry clock of a stand-by.
        self._observed: tuple[str, Any] | None = None
        self._observed_at = 0.0

    def leading(self) -> bool:
        """True while this replica's last renewal is younger than the renew deadline."""
        return self._renewed_at is not None and self._monotonic() - self._renewed_at < self.renew_deadline

    async def run(self, stop: asyncio.Event, liveness: Liveness) -> None:
        """Acquire or renew every retry period until `stop` is set, beating `liveness` each round
        (a stopped election would leave the dispatcher standing by for good); then release a
        Lease held."""
        was_leading = False
        while not stop.is_set():
            liveness.beat("dispatcher lease", self.retry_period)
            try:
                await asyncio.to_thread(self.try_acquire_or_renew)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("dispatcher lease %s: %s", self._name, exc)
            if self.leading() != was_leading:
                was_leading = not was_leading
                log.info(
                    "dispatcher lease %s: %s %s",
                    self._name,
                    self.identity,
                    "leads" if was_leading else "stands by",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_period)
        liveness.end("dispatcher lease")
        if self._renewed_at is not None:
            with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError, OSError):
                await asyncio.to_thread(self.release)

    def _body(self, acquire_time: str, transitions: int, resource_version: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self._name, "namespace": self._namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._lease_seconds,
                "acquireTime": acquire_time,
                "renewTime": _micro_time(datetime.now(UTC)),
                "leaseTransitions": transitions,
            },
        }

    def try_acquire_or_renew(self) -> bool:
        """One round: create the Lease, renew it, or take it over once expired. True when held after it."""
        started = self._monotonic()
        try:
            lease = self._api.read_namespaced_lease(self._name, self._namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = self._body(_micro_time(datetime.now(UTC)), 0, None)
            return self._write(started, lambda: self._api.create_namespaced_lease(self._namespace, body))
        spec = lease.spec
        holder = spec.holder_identity or ""
        record = (holder, spec.renew_time)
        if record != self._observed:
            self._observed, self._observed_at = record, started
        transitions = spec.lease_transitions or 0
        if holder == self.identity:
            acquire_time = _micro_time(spec.acquire_time or datetime.now(UTC))
        else:
            duration = spec.lease_duration_seconds or self._lease_seconds
            if holder and started - self._observed_at < duration:
                self._renewed_at = None
                return False  # another replica holds a Lease that has not expired
            acquire_time, transitions = _micro_time(datetime.now(UTC)), transitions + 1
        body = self._body(acquire_time, transitions, lease.metadata.resource_version)
        return self._write(
            started, lambda: self._api.replace_namespaced_lease(self._name, self._namespace, body)
        )

    def _write(self, started: float, write: Callable[[], Any]) -> bool:
        try:
            write()
        except ApiException as exc:
            if exc.status != 409:  # 409: another replica wrote first
                raise
            self._renewed_at = None
            return False
        self._renewed_at = started
        return True

    def release(self) -> None:
        """Give the Lease up (no holder), if this replica still holds it."""
        self._renewed_at = None
        lease = self._api.read_namespaced_lease(self._name, self._namespace)
        if lease.spec.holder_identity != self.identity:
            return
        body = self._body(
            _micro_time(lease.spec.acquire_time),
            lease.spec.lease_transitions or 0,
            lease.metadata.resource_version,
        )
        body["spec"]["holderIdentity"] = None
        body["spec"]["leaseDurationSeconds"] = 1
        self._api.replace_namespaced_lease(self._name, self._namespace, body)
