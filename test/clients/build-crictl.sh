#!/usr/bin/env bash
# Builds crictl v1.26.1 offline from shared/cri-tools (vendored source, Debian's Go 1.19) and caches it.
#   usage: build-crictl.sh [OUT]   (OUT defaults to /var/cache/paene-test/crictl)
# Quick when OUT already exists. Needs golang-go (installed by `scripts/setup.sh --peers`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-/var/cache/paene-test/crictl}"
[ -x "$out" ] && exit 0
src=""
for c in "${CRI_TOOLS_SRC:-}" "$here/../../../shared/cri-tools/crictl-v1.26.1-src.tar.xz" /work/shared/cri-tools/crictl-v1.26.1-src.tar.xz; do
  [ -n "$c" ] && [ -f "$c" ] && { src="$c"; break; }
done
[ -n "$src" ] || { echo "build-crictl: crictl-v1.26.1-src.tar.xz not found (set CRI_TOOLS_SRC)" >&2; exit 1; }
go=go
command -v go >/dev/null || go=/usr/lib/go/bin/go
d="$(mktemp -d)"
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/src"
tar -C "$d/src" -xJf "$src"
(cd "$d/src" && GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GOCACHE="$d/cache" GOPATH="$d/gopath" CGO_ENABLED=0 \
  "$go" build -trimpath -ldflags "-s -w -X github.com/kubernetes-sigs/cri-tools/pkg/version.Version=v1.26.1" \
  -o "$d/crictl" ./cmd/crictl)
mkdir -p "$(dirname "$out")"
install -m 0755 "$d/crictl" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "build-crictl: built $out" >&2
