"""Which findings affect a package version: the OSV `query` question ("which findings affect
`pkg:pypi/flask@2.3.1`?") answered from a finding's affected products.

A product names a package by purl. It affects a version when its purl carries that version, when
its `vers:` range contains it (univers' version ordering of the range's scheme), or when it gives
neither (no version is ruled out). CPE-named products are not packages and never match.
"""

from __future__ import annotations

from dataclasses import dataclass

from packageurl import PackageURL

from preflight_clearinghouse.domain.errors import FieldViolation, InvalidInput
from preflight_clearinghouse.domain.findings.finding import AffectedProduct, parse_version_range


@dataclass(frozen=True)
class PackageVersion:
    """A package (a purl without version, qualifiers or subpath) and one of its versions."""

    package: str
    version: str


def package_of(purl: str) -> str:
    """The package a purl names: type, namespace and name only (ValueError for a malformed purl)."""
    parsed = PackageURL.from_string(purl)
    return PackageURL(type=parsed.type, namespace=parsed.namespace, name=parsed.name).to_string()


def package_version(purl: str, version: str = "") -> PackageVersion:
    """The package and version a query names: a purl with a version, or one without and `version`.
    InvalidInput naming `purl` for a malformed purl, `version` for none or two different ones."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        raise InvalidInput(
            [FieldViolation("purl", "is not a package URL (pkg:type/namespace/name@version)")]
        ) from None
    if parsed.version and version and parsed.version != version:
        raise InvalidInput([FieldViolation("version", "differs from the purl's version")])
    chosen = parsed.version or version
    if not chosen:
        raise InvalidInput([FieldViolation("version", "is required, in the purl or beside it")])
    return PackageVersion(package_of(purl), chosen)


def affects(product: AffectedProduct, wanted: PackageVersion) -> bool:
    """Whether `product` names `wanted`'s package and does not rule its version out."""
    if not product.purl or package_of(product.purl) != wanted.package:
        return False
    named = PackageURL.from_string(product.purl).version
    if product.version_range:
        versions = parse_version_range(product.version_range)
        try:
            return bool(versions.version_class(wanted.version) in versions)
        except Exception:  # univers raises ValueError, TypeError or its own errors for foreign versions
            return False
    return not named or named == wanted.version
