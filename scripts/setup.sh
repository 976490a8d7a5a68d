#!/usr/bin/env bash
# Installs what paene needs on a fresh Debian/Ubuntu machine and builds it.
# Idempotent and quick when everything is there. Run as root.
#   --peers   also install the runtimes the benchmarks and tests compare with (runc, crun, bubblewrap),
#             containerd (drives paene-runc in the tests), skopeo, umoci (read paene's image exports) and
#             golang-go (builds the OCI conformance suite the tests run against paene-runc)
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
command -v cc >/dev/null || want+=(gcc libc6-dev)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || want+=(busybox-static)
command -v unshare >/dev/null && command -v nsenter >/dev/null && command -v setpriv >/dev/null || want+=(util-linux)
command -v ps >/dev/null || want+=(procps)
command -v ipcs >/dev/null || want+=(util-linux)
# private network contexts: veth, bridge, addresses and routes (ip), NAT and anti-spoofing (nft); both live in sbin
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || want+=(iproute2)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || want+=(nftables)
if [ "${1:-}" = "--peers" ]; then
  command -v runc >/dev/null || want+=(runc)
  command -v crun >/dev/null || want+=(crun)
  command -v bwrap >/dev/null || want+=(bubblewrap)
  command -v containerd >/dev/null && command -v ctr >/dev/null || want+=(containerd)
  command -v skopeo >/dev/null || want+=(skopeo)
  command -v umoci >/dev/null || want+=(umoci)
  # the OCI conformance suite (test/oci/conformance.test.ts) is built from source with Debian's Go
  command -v go >/dev/null || [ -x /usr/lib/go/bin/go ] || want+=(golang-go)
  # npm run lint (npm test runs it) holds the C style with clang-format
  command -v clang-format >/dev/null || want+=(clang-format)
  # the client tests (test/clients/): Docker 20.10 and Podman 4.3 (with conmon, catatonit for --init) drive
  # paene-runc; wget fetches from a container's published port; crictl is built from shared/ with golang-go
  command -v dockerd >/dev/null && [ -x /usr/bin/docker ] || want+=(docker.io)
  command -v podman >/dev/null || want+=(podman)
  command -v conmon >/dev/null || want+=(conmon)
  command -v catatonit >/dev/null || want+=(catatonit)
  command -v wget >/dev/null || want+=(wget)
  # the guest-init test boots a Debian 12 guest with sysvinit, made once with debootstrap
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || want+=(debootstrap)
fi
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${want[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${want[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent
if [ "${1:-}" = "--peers" ]; then
  bash scripts/debian-guest.sh
fi
