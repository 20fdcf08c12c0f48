#!/usr/bin/env bash
# Builds the pinned test-cluster binaries from the Go module proxy into
# $CACHE_DIR/bin (default: <repo>/.cache/bin). A binary that is already there
# with the expected version stamp is not rebuilt.
#
#   deploy/k8s/build.sh [etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok|all]
#
# Build durations are appended to $CACHE_DIR/k8s/build-times.tsv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

CACHE_DIR="${CACHE_DIR:-$repo/.cache}"
BIN="$CACHE_DIR/bin"
STAMPS="$CACHE_DIR/k8s/stamps"
mkdir -p "$BIN" "$STAMPS"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

log() { printf '[k8s-build] %s\n' "$*" >&2; }

# run_build NAME STAMP CMD...: skip when $BIN/NAME exists and its stamp matches.
run_build() {
  local name="$1" stamp="$2"; shift 2
  if [[ -x "$BIN/$name" && -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$stamp" ]]; then
    log "$name $stamp: cached"
    return 0
  fi
  log "$name $stamp: building (this can take several minutes on 2 cores)"
  local start end
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  echo "$stamp" > "$STAMPS/$name"
  printf '%s\t%s\t%ss\t%s\n' "$name" "$stamp" "$((end - start))" "$(date -u +%FT%TZ)" >> "$CACHE_DIR/k8s/build-times.tsv"
  log "$name built in $((end - start))s"
}

kube_ldflags() {
  local v="$KUBERNETES_VERSION" maj min
  maj="${v#v}"; maj="${maj%%.*}"
  min="${v#v*.}"; min="${min%%.*}"
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$maj -X $pkg.gitMinor=$min"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$f"
}

build_kube() {
  local name="$1"
  run_build "$name" "$KUBERNETES_VERSION" \
    bash -c "cd '$here/tools/kube' && go build -trimpath -ldflags '$(kube_ldflags)' -o '$BIN/$name' k8s.io/kubernetes/cmd/$name"
}

build_etcd() {
  run_build etcd "$ETCD_VERSION" \
    bash -c "cd '$here/tools/etcd' && go build -trimpath -ldflags '-s -w' -o '$BIN/etcd' go.etcd.io/etcd/server/v3"
}

build_kwok() {
  run_build kwok "$KWOK_VERSION" \
    env GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

what="${1:-all}"
case "$what" in
  etcd) build_etcd ;;
  kube-apiserver|kube-controller-manager|kube-scheduler) build_kube "$what" ;;
  kwok) build_kwok ;;
  all)
    build_etcd
    build_kwok
    build_kube kube-apiserver
    build_kube kube-controller-manager
    build_kube kube-scheduler
    ;;
  *) echo "usage: $0 [etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok|all]" >&2; exit 2 ;;
esac
