#!/usr/bin/env bash
# The stand-in for the images' PYTHON_IMAGE (python:3.11-slim) where no container registry is
# reachable: a minimal Debian bookworm built with debootstrap, with the CPython that `PYTHON`
# names (>= 3.11.5; Debian's own python3 is older) copied to /usr/local as the official image
# has it, pip from its ensurepip, and the image's PATH and LANG. Needs root, debootstrap and
# podman.
#
#   deploy/docker/python-base.sh [PYTHON]   prints the image's name, localhost/preflight-python-base:<key>
#
# The root file system is cached as .cache/images/python-base-<key>.tar, <key> a digest of this
# script, the interpreter's version and the CA certificates the image trusts; the image is
# imported into podman's local storage only when it is not there already.
#
# The image trusts the CA certificates of the machine that builds it (those it added under
# /usr/local/share/ca-certificates), and pip the system's store: the images' builder stages
# reach the package indexes as this machine does, also through a TLS-inspecting proxy.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:-python3}
SUITE=bookworm
PACKAGES=ca-certificates,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libgdbm6,libuuid1,libexpat1

prefix=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
version=$("$PYTHON" -c 'import sys; print(sys.version)')
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))' \
	|| { echo "$PYTHON is $version; the images need >= 3.11.5" >&2; exit 1; }
key=$({ cat "$0"; echo "$version"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
	| sha256sum | cut -c1-16)
image=localhost/preflight-python-base:$key
tarball=.cache/images/python-base-$key.tar

if ! podman image exists "$image"; then
	if [ ! -f "$tarball" ]; then
		mkdir -p .cache/images
		root=$(mktemp -d .cache/images/rootfs.XXXXXX)
		trap 'rm -rf "$root"' EXIT
		# The mirror this machine's apt uses (debootstrap's default when none is configured).
		mirror=$(sed -n -e 's|^URIs: *\(\S*/debian\)/*$|\1|p' -e "s|^deb \+\(\S*/debian\)/* \+$SUITE .*|\1|p" \
			/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1 || true)
		debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" ${mirror:+"$mirror"} >&2
		# The interpreter, its standard library and headers, without the packages installed into it.
		tar -C "$prefix" --exclude='./lib/python3.*/site-packages/*' --exclude='./lib/python3.*/test' \
			--exclude='__pycache__' --exclude='./bin/*' -cf - . | tar -C "$root/usr/local" -xf -
		for name in python3 python3-config; do
			cp -a "$prefix/bin/$name"* "$root/usr/local/bin/"
		done
		ln -sf python3 "$root/usr/local/bin/python"
		cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
		printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
		chroot "$root" /bin/sh -ec '
			ldconfig
			update-ca-certificates >/dev/null
			PATH=/usr/local/bin:$PATH python3 -m ensurepip --default-pip >/dev/null
			ln -sf pip3 /usr/local/bin/pip
			apt-get clean
			rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /root/.cache'
		tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
	fi
	podman import \
		--change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'CMD ["python3"]' \
		"$tarball" "$image" >&2
fi
echo "$image"
