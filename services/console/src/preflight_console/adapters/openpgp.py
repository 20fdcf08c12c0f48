"""Detached OpenPGP signatures of the CSAF documents the console serves, made by GnuPG (`gpg`, through
python-gnupg) with the provider's signing key.

The key is an ASCII-armored secret key without a passphrase, read from its file at start and
imported into a GnuPG home of the console's own (a private temporary folder, removed on close), so
the operator's keyrings are never touched. The CSAF standard asks a trusted provider for OpenPGP
signatures (section 7.1.19), which its consumers verify with the public key the provider metadata
lists.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import gnupg
from preflight_common.config import ConfigError


class OpenPgpSigner:
    """Signs with the one secret key of `key_file`."""

    def __init__(self, key_file: Path) -> None:
        self._home = tempfile.mkdtemp(prefix="preflight-console-gnupg-")
        try:
            self._gpg = gnupg.GPG(gnupghome=self._home)
            self._gpg.import_keys(key_file.read_text())
            secret = self._gpg.list_keys(secret=True)
            if len(secret) != 1:
                raise ConfigError(
                    f"PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY_FILE: needs one secret key, found {len(secret)}"
                )
            self.fingerprint: str = secret[0]["fingerprint"]
            self.public_key: str = self._gpg.export_keys(self.fingerprint)
        except BaseException:
            shutil.rmtree(self._home, ignore_errors=True)
            raise

    def _sign(self, document: bytes) -> str:
        signed = self._gpg.sign(document, keyid=self.fingerprint, detach=True, binary=False)
        if not signed.data:
            raise RuntimeError(f"gpg did not sign: {signed.status}")
        return str(signed)

    async def sign(self, document: bytes) -> str:
        """The ASCII-armored detached signature of `document` (gpg runs in a worker thread)."""
        return await asyncio.to_thread(self._sign, document)

    def close(self) -> None:
        """Stop the GnuPG home's agent and remove the home."""
        subprocess.run(["gpgconf", "--homedir", self._home, "--kill", "gpg-agent"], capture_output=True)
        shutil.rmtree(self._home, ignore_errors=True)
