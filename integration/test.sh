#!/usr/bin/env bash
# The test suite: installs what it needs (integration/setup.sh --test), checks formatting and
# lints, runs the Rust tests, then the end-to-end tests with real LiveKit clients (the livekit
# Python SDK and headless Chromium with livekit-client) inside a throw-away network namespace.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/integration/setup.sh" --test

failed=()
step() { echo; echo "=== $1"; }

step "cargo fmt --check"
cargo fmt --all -- --check || failed+=("fmt")
step "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings || failed+=("clippy")
step "cargo build"
cargo build --quiet
step "cargo test"
cargo test --quiet 2>&1 | tee target/cargo-test.log || failed+=("cargo test")

mkdir -p target/artifacts
step "room server with the livekit Python SDK (netns)"
timeout 900 "$root/integration/netns.sh" "$root/target/venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/python || failed+=("pytest")
step "web page in headless Chromium (netns)"
timeout 300 "$root/integration/netns.sh" node tests/browser/two_tabs.mjs || failed+=("browser")

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test stages passed"
