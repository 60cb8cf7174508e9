#!/usr/bin/env bash
# Runs a command inside a throw-away network namespace with `lo` up and a veth pair
# (10.200.0.1/24 <-> 10.200.0.2/24). WebRTC stacks (libwebrtc, aioice, libre) skip loopback
# candidates, so tests that involve them run in here; no traffic leaves the namespace.
# Usage: integration/netns.sh CMD [ARGS...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
exec unshare -n bash -c '
set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.200.0.1/24 dev v0
ip addr add 10.200.0.2/24 dev v1
ip link set v0 up
ip link set v1 up
exec "$@"' netns "$@"
