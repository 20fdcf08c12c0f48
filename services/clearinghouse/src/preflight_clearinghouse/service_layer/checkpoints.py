"""Signed checkpoints of the audit log's chain head, and checking the log against one.

`publish_if_due` signs the current head of a non-empty log and queues it for the audit
checkpoints topic (through the outbox, in a transaction of its own that adds no audit entry) when
the head moved since the last checkpoint this process published, or when that one is older than
`refresh` — so that the topic, whose retention is finite, always holds a recent one. `verify`
checks the chain against a checkpoint given from outside, after checking its signature with the
configured key.
"""

from __future__ import annotations

from datetime import timedelta

from preflight_clearinghouse.adapters.checkpoints import verified_checkpoint
from preflight_clearinghouse.adapters.store import Reader, Store
from preflight_clearinghouse.domain.audit import (
    ChainVerdict,
    Checkpoint,
    SignedCheckpoint,
    checkpoint_body,
    verify_chain,
)
from preflight_clearinghouse.domain.events import CheckpointSigned
from preflight_clearinghouse.domain.sharing import PRIVILEGED, Viewer
from preflight_clearinghouse.service_layer.registry import Clock, require
from preflight_clearinghouse.service_layer.reviews import Signer

DEFAULT_REFRESH = timedelta(days=1)


def verify_against(reader: Reader, checkpoint: Checkpoint | None) -> ChainVerdict:
    """The verdict on the stored chain, checked against `checkpoint` when given."""
    head_seq, head_hash = reader.audit_head()
    return verify_chain(reader.audit_entries(), head_seq, head_hash, checkpoint)


class AuditCheckpoints:
    """Signs and publishes checkpoints of the audit chain head; verifies the chain against one."""

    def __init__(
        self, store: Store, signer: Signer, clock: Clock, refresh: timedelta = DEFAULT_REFRESH
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._refresh = refresh
        self._last: Checkpoint | None = None

    def _sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        """`checkpoint` signed with the clearinghouse's key."""
        body = checkpoint_body(checkpoint, self._signer.key_id)
        return SignedCheckpoint(checkpoint, body, self._signer.sign(body), self._signer.key_id)

    def publish_if_due(self) -> SignedCheckpoint | None:
        """Queue a signed checkpoint of the current head when one is due (see the module doc)."""
        now = self._clock()
        with self._store.write() as uow:
            seq, head_hash = uow.audit_head()
            if seq == 0:
                return None  # an empty log: nothing to vouch for
            last = self._last
            if (
                last is not None
                and (last.seq, last.head_hash) == (seq, head_hash)
                and now - last.at < self._refresh
            ):
                return None
            signed = self._sign(Checkpoint(seq, head_hash, now))
            uow.emit(CheckpointSigned(signed))
        self._last = signed.checkpoint
        return signed

    def verify(self, viewer: Viewer, body: bytes = b"", signature: bytes = b"") -> ChainVerdict:
        """Check the audit chain (reviewers and admins), against the checkpoint that `body` carries
        when a body or signature is given: InvalidInput when its signature does not verify with the
        clearinghouse's key or it carries no checkpoint."""
        require(viewer, PRIVILEGED, "verifying the audit log")
        given = body or signature
        checkpoint = verified_checkpoint(self._signer.public_key, body, signature) if given else None
        with self._store.read() as reader:
            return verify_against(reader, checkpoint)
