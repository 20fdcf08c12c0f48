"""KubernetesExecutor: one batch/v1 Job per attempt, created, watched and deleted with the official client.

Creating is idempotent: a 409 (the Job exists) means a previous call or a
previous dispatcher created it, and the executor watches that Job. Server
errors (5xx, 429) and connection failures are retried with exponential backoff
up to `api_attempts` times; then the attempt ends as INFRASTRUCTURE.

A Job deleted by anyone but this executor (kubectl, its TTL collected while no
dispatcher watched it) ends the attempt as INFRASTRUCTURE, retried while
attempts remain: a resumed attempt re-attaches to its Job and never creates it
again, so a dispatcher that crashed between starting an attempt and creating
its Job spends that attempt. A resumed attempt's Job gets its token Secret again
(an existing one is kept): the dispatcher may have stopped between creating the
Job and its Secret, and the pod would wait for it until its deadline.

With `job_tokens`, each Job gets a token of its own job (`JobTokens`) in a Secret
created right after the Job, owned by it (`token_secret`): the worker's pod
waits to start until the Secret exists, and the garbage collector deletes the
Secret with its Job. The service's own token reaches no worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config
from kubernetes.watch import watch

from preflight_benchmark.adapters.executors.k8s_manifest import (
    ManifestSettings,
    UnknownAcceleratorError,
    build_job,
    job_name,
    token_secret,
)
from preflight_benchmark.domain.jobs import AttemptEnd, AttemptOutcome
from preflight_benchmark.domain.ports import Attempt, JobTokenError, JobTokens

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class KubernetesApiError(Exception):
    """The API server kept failing (or refused the request); the message says how."""


def api_client_from(kubeconfig: str | None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, or the in-cluster service account when None."""
    if kubeconfig:
        api_client: client.ApiClient = kube_config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return api_client
    incluster_config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def outcome_of(job: Any) -> AttemptOutcome | None:
    """The attempt's end from a V1Job's status conditions; None while it runs."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status != "True":
            continue
        if condition.type in ("Complete", "SuccessCriteriaMet"):
            name = job.metadata.name if job.metadata else "?"
            return AttemptOutcome(AttemptEnd.EXITED, f"Job {name} succeeded")
        if condition.type == "Failed":
            detail = f"{condition.reason}: {condition.message or ''}".strip(": ")
            if condition.reason == "DeadlineExceeded":
                return AttemptOutcome(AttemptEnd.TIMED_OUT, detail)
            if condition.reason == "PodFailurePolicy":
                return AttemptOutcome(AttemptEnd.CONFIG_ERROR, detail)
            return AttemptOutcome(AttemptEnd.CRASHED, detail)
    return None


class KubernetesExecutor:
    """Runs attempts as Kubernetes Jobs through an injected ApiClient."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: client.ApiClient,
        settings: ManifestSettings,
        *,
        api_attempts: int = 5,
        initial_backoff: float = 0.5,
        watch_timeout: int = 60,
        job_tokens: JobTokens | None = None,
    ) -> None:
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._job_tokens = job_tokens
        self._settings = settings
        self._api_attempts = api_attempts
        self._initial_backoff = initial_backoff
        self._watch_timeout = watch_timeout
        # Names of the Jobs this executor is deleting: their deletion is a cancellation.
        self._cancelling: set[str] = set()
        # The open watches' HTTP responses, each read by a worker thread until its Job changes or
        # `watch_timeout` passes: `close` ends them at once (see there).
        self._watches: set[urllib3.BaseHTTPResponse] = set()
        self._watches_lock = threading.Lock()
        self._closed = False

    async def close(self) -> None:
        """End the open watches now. A stopped dispatcher leaves its attempts' watches to their
        threads, and the process's event loop waits for those threads when it closes: without
        this, a shutdown with Jobs running took up to `watch_timeout`, past its budget. The Jobs
        themselves go on; the next dispatcher re-attaches to them."""
        with self._watches_lock:
            self._closed = True
            watches = list(self._watches)
        for response in watches:
            # Shuts its socket down for reading: the blocked read in its thread ends at once.
            response.shutdown()

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the API in a thread, retrying server errors and connection failures with backoff."""
        delay = self._initial_backoff
        for attempt in range(1, self._api_attempts + 1):
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS:
                    raise
                problem = f"HTTP {exc.status} {exc.reason}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self._api_attempts:
                raise KubernetesApiError(f"{what} failed after {attempt} attempts: {problem}")
            log.warning("%s failed (%s); retrying in %.1fs", what, problem, delay)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def create(self, attempt: Attempt) -> None:
        """Create the attempt's Job, then its token Secret; an existing one (409) counts as created."""
        manifest = build_job(attempt, self._settings)
        namespace = self._settings.namespace
        try:
            job = await self._call("create Job", self._batch.create_namespaced_job, namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise KubernetesApiError(f"create Job refused: HTTP {exc.status} {exc.reason}") from None
            log.info("Job %s already exists; watching it", manifest["metadata"]["name"])
            job = await self._call(
                "read Job", self._batch.read_namespaced_job, manifest["metadata"]["name"], namespace
            )
        if self._job_tokens is not None:
            assert job.metadata is not None and job.metadata.uid  # the API server sets both
            await self._give_token(attempt, job.metadata.uid, self._job_tokens)

    async def _give_token(self, attempt: Attempt, job_uid: str, job_tokens: JobTokens) -> None:
        """Create the Job's token Secret (an existing one, 409, is kept: its token is still valid)."""
        try:
            token = await job_tokens.issue(attempt)
        except JobTokenError as exc:
            raise KubernetesApiError(str(exc)) from None
        secret = token_secret(attempt, self._settings, job_uid, token)
        try:
            await self._call(
                "create token Secret", self._core.create_namespaced_secret, self._settings.namespace, secret
            )
        except ApiException as exc:
            if exc.status != 409:
                raise KubernetesApiError(
                    f"create token Secret refused: HTTP {exc.status} {exc.reason}"
                ) from None

    async def run(self, attempt: Attempt) -> AttemptOutcome:
        name = job_name(attempt.job_id, attempt.attempt)
        try:
            if not attempt.resumed:
                await self.create(attempt)
            elif self._job_tokens is not None:
                await self._resume_token(attempt, name, self._job_tokens)
            return await self._watch(name)
        except KubernetesApiError as exc:
            return AttemptOutcome(AttemptEnd.INFRASTRUCTURE, str(exc))
        except UnknownAcceleratorError as exc:
            return AttemptOutcome(AttemptEnd.CONFIG_ERROR, str(exc))
        finally:
            self._cancelling.discard(name)

    async def _resume_token(self, attempt: Attempt, name: str, job_tokens: JobTokens) -> None:
        """Give the resumed attempt's Job its token Secret unless it has one. Best effort: the
        Secret most likely exists, so a failure here is logged and the watch goes on (it reports a
        Job gone)."""
        try:
            job = await self._call(
                "read Job", self._batch.read_namespaced_job, name, self._settings.namespace
            )
            assert job.metadata is not None and job.metadata.uid  # the API server sets both
            await self._give_token(attempt, job.metadata.uid, job_tokens)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("Job %s: token Secret not checked on resume: HTTP %s", name, exc.status)
        except KubernetesApiError as exc:
            log.warning("Job %s: token Secret not checked on resume: %s", name, exc)

    def _deleted(self, name: str) -> AttemptOutcome:
        if name in self._cancelling:
            return AttemptOutcome(AttemptEnd.CANCELLED, f"Job {name} was deleted")
        return AttemptOutcome(AttemptEnd.INFRASTRUCTURE, f"Job {name} was deleted by someone else")

    async def _watch(self, name: str) -> AttemptOutcome:
        namespace = self._settings.namespace
        while True:
            try:
                # The Job itself, status included: the dispatcher's Role grants `get` on jobs,
                # not on the jobs/status subresource.
                current = await self._call("read Job", self._batch.read_namespaced_job, name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return self._deleted(name)
                raise KubernetesApiError(f"read Job refused: HTTP {exc.status} {exc.reason}") from None
            ended = outcome_of(current)
            if ended is not None:
                return ended
            version = current.metadata.resource_version if current.metadata else None
            result = await self._call("watch Job", self._watch_once, name, version)
            if result is not None:
                return result

    def _watch_once(self, name: str, resource_version: str | None) -> AttemptOutcome | None:
        """Follow the Job until it ends, is deleted, or the watch times out (None: read again;
        also once `close` ended the watch)."""
        opened: list[urllib3.BaseHTTPResponse] = []

        def listing(*args: Any, **kwargs: Any) -> urllib3.BaseHTTPResponse:
            # With the watch's `_preload_content=False`, the raw HTTP response.
            response = cast(urllib3.BaseHTTPResponse, self._batch.list_namespaced_job(*args, **kwargs))
            with self._watches_lock:
                opened.append(response)
                self._watches.add(response)
                if self._closed:
                    response.shutdown()
            return response

        # The events' objects are Jobs (the watch reads the type from `listing` otherwise).
        stream = watch.Watch(return_type="V1Job").stream(  # type: ignore[no-untyped-call]
            listing,
            self._settings.namespace,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            timeout_seconds=self._watch_timeout,
        )
        try:
            for event in stream:
                if event["type"] == "DELETED":
                    return self._deleted(name)
                ended = outcome_of(event["object"])
                if ended is not None:
                    return ended
        except ApiException as exc:
            if exc.status == 410:  # resource version too old: read again
                return None
            raise
        except (urllib3.exceptions.HTTPError, OSError):
            if self._closed:
                return None
            raise
        finally:
            with self._watches_lock:
                self._watches.difference_update(opened)
        return None

    async def cancel(self, job_id: str, attempt: int) -> None:
        name = job_name(job_id, attempt)
        self._cancelling.add(name)
        try:
            await self._call(
                "delete Job",
                self._batch.delete_namespaced_job,
                name,
                self._settings.namespace,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:
                log.error("deleting Job %s refused: HTTP %s %s", name, exc.status, exc.reason)
        except KubernetesApiError as exc:
            log.error("%s", exc)
