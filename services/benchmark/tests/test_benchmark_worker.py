"""The worker's model access: credentials resolved by reference over gRPC, configuration errors named."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from preflight.benchmark.v1 import events_pb2
from preflight.intake.v1 import submission_pb2
from preflight_benchmark.adapters.grpc_clients import GrpcCredentialResolver
from preflight_benchmark.domain.jobs import FailureReason
from preflight_benchmark.domain.ports import CredentialError
from preflight_benchmark.worker.run import (
    WorkerFailure,
    WorkerSettings,
    check_log_dir,
    classify_error,
    model_access,
)
from preflight_common.grpcserver import ServerTLS
from preflight_common.ports import free_port
from preflight_testkit.benchmark import IntakeStandIn, intake_stand_in
from preflight_testkit.tls import TestAuthority


def endpoint_job(credential_ref: str) -> events_pb2.BenchmarkJobRequested:
    return events_pb2.BenchmarkJobRequested(
        job_id="bj-1",
        access=submission_pb2.ModelAccess(
            endpoint=submission_pb2.EndpointAccess(
                base_url="http://127.0.0.1:1/v1", model_name="frontier", credential_ref=credential_ref
            )
        ),
    )


def test_the_credential_is_resolved_by_reference_for_the_job(intake: IntakeStandIn) -> None:
    ref = intake.add_credential("sk-secret-value")
    resolver = GrpcCredentialResolver(intake.target, intake.job_token("bj-1"))
    access = asyncio.run(model_access(endpoint_job(ref), resolver, WorkerSettings()))
    assert (access.spec, access.base_url, access.api_key) == (
        "openai-api/preflight/frontier",
        "http://127.0.0.1:1/v1",
        "sk-secret-value",
    )
    assert (ref, "bj-1") in intake.servicer.calls


def test_an_unknown_reference_is_a_configuration_error(intake: IntakeStandIn) -> None:
    resolver = GrpcCredentialResolver(intake.target, intake.job_token("bj-1"))
    with pytest.raises(WorkerFailure) as failure:
        asyncio.run(model_access(endpoint_job("cred-unknown"), resolver, WorkerSettings()))
    assert (failure.value.reason, failure.value.retryable) == (FailureReason.CONFIG_ERROR, False)
    assert "NOT_FOUND" in failure.value.message


def test_only_the_jobs_own_token_resolves_its_credential(intake: IntakeStandIn) -> None:
    ref = intake.add_credential("sk-x")
    for token in (intake.lab_token("lab-a"), intake.service_token, intake.job_token("bj-2")):
        resolver = GrpcCredentialResolver(intake.target, token)
        with pytest.raises(CredentialError, match="PERMISSION_DENIED"):
            asyncio.run(resolver.resolve(ref, "bj-1"))


def test_an_unreachable_intake_is_a_retryable_failure() -> None:
    resolver = GrpcCredentialResolver(f"127.0.0.1:{free_port()}", "token", attempts=2, timeout=1)
    with pytest.raises(CredentialError) as unreachable:
        asyncio.run(resolver.resolve("cred-1", "bj-1"))
    assert unreachable.value.retryable


def test_the_credential_is_resolved_over_tls_when_the_ca_is_given(tmp_path: Path) -> None:
    authority = TestAuthority()
    issued = authority.issue("intake")
    with intake_stand_in(tmp_path, tls=ServerTLS(issued.certificate, issued.key)) as intake:
        ref = intake.add_credential("sk-over-tls")
        trusting = GrpcCredentialResolver(
            intake.target, intake.job_token("bj-1"), credentials=grpc.ssl_channel_credentials(authority.pem)
        )
        assert asyncio.run(trusting.resolve(ref, "bj-1")) == "sk-over-tls"
        # Plaintext, or a CA that did not issue intake's certificate: no connection, nothing sent.
        for credentials in (None, grpc.ssl_channel_credentials(TestAuthority().pem)):
            resolver = GrpcCredentialResolver(
                intake.target, intake.job_token("bj-1"), credentials=credentials, attempts=1, timeout=5
            )
            with pytest.raises(CredentialError, match="intake unreachable"):
                asyncio.run(resolver.resolve(ref, "bj-1"))
        assert intake.servicer.calls == [(ref, "bj-1")]


def test_weights_without_a_model_server_is_a_configuration_error_naming_the_gpu() -> None:
    job = events_pb2.BenchmarkJobRequested(
        job_id="bj-1",
        access=submission_pb2.ModelAccess(weights=submission_pb2.WeightsAccess(artifact_uri="file:///w")),
    )
    with pytest.raises(WorkerFailure) as failure:
        asyncio.run(model_access(job, GrpcCredentialResolver("127.0.0.1:1", "t"), WorkerSettings()))
    assert failure.value.reason == FailureReason.CONFIG_ERROR and "GPU" in failure.value.message
    served = asyncio.run(
        model_access(
            job,
            GrpcCredentialResolver("127.0.0.1:1", "t"),
            WorkerSettings(model_server_url="http://127.0.0.1:8000/v1"),
        )
    )
    assert served.spec == "openai-api/vllm/weights"


@pytest.mark.parametrize(
    ("message", "reason", "retryable"),
    [
        ("APIConnectionError: Connection error.", FailureReason.MODEL_UNREACHABLE, True),
        ("AuthenticationError: Error code: 401", FailureReason.MODEL_UNREACHABLE, False),
        ("ValueError: bad sample", FailureReason.EVAL_ERROR, False),
    ],
)
def test_eval_errors_are_classified(message: str, reason: FailureReason, retryable: bool) -> None:
    assert classify_error(message) == (reason, retryable)


def test_an_eval_log_store_without_its_file_system_is_a_configuration_error(tmp_path: Path) -> None:
    """A log root the worker cannot write through (a URL whose fsspec file system is not
    installed) fails the job at once, naming the store, instead of crashing every attempt."""
    check_log_dir("s3://preflight-eval-logs/reviews/sub-1")
    check_log_dir(str(tmp_path / "eval-logs" / "sub-1"))
    with pytest.raises(WorkerFailure) as failure:
        check_log_dir("nosuchstore://preflight-eval-logs/sub-1")
    assert (failure.value.reason, failure.value.retryable) == (FailureReason.CONFIG_ERROR, False)
    assert failure.value.message.startswith("eval log store nosuchstore://: ")
