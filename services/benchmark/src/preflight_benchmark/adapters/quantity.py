"""Kubernetes resource quantities (the subset the catalog accepts)."""

from __future__ import annotations

SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def to_bytes(quantity: str) -> int:
    """A memory quantity such as "4Gi" or "512M" in bytes."""
    number = quantity.rstrip("kKMGTi")
    suffix = quantity[len(number) :]
    if suffix not in SUFFIXES or not number:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(float(number) * SUFFIXES[suffix])


def to_cpus(quantity: str) -> float:
    """A CPU quantity such as "2", "1.5" or "500m" in CPUs (any other suffix as for bytes)."""
    try:
        return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    except ValueError:
        return float(to_bytes(quantity))
