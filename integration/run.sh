#!/usr/bin/env bash
# Runs the gateway with its embedded room server on loopback (development defaults):
# installs prerequisites, builds the release binary and the web page, then `jonction run`.
# Open http://127.0.0.1:7880/ to join a room. Extra arguments go to `jonction run`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/integration/setup.sh"
cargo build --release --quiet
exec "$root/target/release/jonction" --config "${JONCTION_CONFIG:-$root/systemd/jonction.toml}" run "$@"
