"""Verifying the clearinghouse's signed review reports (Ed25519), for every service that trusts one.

A report's signature covers its body: the canonical JSON the clearinghouse signs, which names the
report, its submission, the submitting lab's organisation, its version and the signing key.
`report_refusal` holds a report event to all of it, so neither a bogus signature nor a genuine body
announced as another report, submission or lab is taken for the real thing.
"""

from __future__ import annotations

# One implementation for the services and the SDK's users: what a lab checks is what intake checks.
from preflight.sdk.reports import report_refusal as report_refusal
from preflight.sdk.reports import verify_signature as verify_signature
