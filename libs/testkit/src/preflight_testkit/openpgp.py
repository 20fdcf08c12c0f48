"""OpenPGP signing keys for tests, made by the real `gpg` (GnuPG)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def signing_key(folder: Path) -> Path:
    """A fresh Ed25519 OpenPGP signing key made by gpg in `folder` (which must not hold a
    `gnupg` folder yet): the file `folder/csaf-signing.asc`, an ASCII-armored secret key without
    passphrase. The GnuPG home it was made in stays in `folder`, its agent stopped."""
    home = folder / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    uid = "Preflight CSAF provider <csaf@preflight.example>"
    subprocess.run(
        [*gpg, "--quick-gen-key", uid, "ed25519", "sign", "never"], check=True, capture_output=True
    )
    armored = subprocess.run(
        [*gpg, "--armor", "--export-secret-keys"], check=True, capture_output=True
    ).stdout
    key_file = folder / "csaf-signing.asc"
    key_file.write_bytes(armored)
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True
    )
    return key_file
