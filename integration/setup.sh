#!/usr/bin/env bash
# Installs everything jonction needs to build, run and test on Debian 12 (idempotent).
#   integration/setup.sh            build + run prerequisites
#   integration/setup.sh --test     also the test peers (Chromium, Python livekit SDK, tshark, ...)
#   integration/setup.sh --bench    also what the whole-process benches drive (sipp, rtpengine);
#                                   not part of CI (`.ci/run` uses --test)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
want_test=0
want_bench=0
[ "${1:-}" = "--test" ] && want_test=1
[ "${1:-}" = "--bench" ] && want_bench=1

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

build_pkgs=(build-essential pkg-config cmake curl ca-certificates nodejs npm)
test_pkgs=(chromium iproute2 tshark ffmpeg sox espeak-ng sip-tester baresip baresip-ffmpeg)
# benches/transcode_compare.rs runs rtpengine in the foreground itself (userspace, --table=-1);
# the package's own service is never started by the benches.
bench_pkgs=(sip-tester rtpengine-daemon)

missing=()
pkgs=("${build_pkgs[@]}")
[ $want_test -eq 1 ] && pkgs+=("${test_pkgs[@]}")
[ $want_bench -eq 1 ] && pkgs+=("${bench_pkgs[@]}")
for p in "${pkgs[@]}"; do
  # node/npm may come from elsewhere (nodesource, nvm): only install when the command is absent.
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: no Rust toolchain; installing rustup (stable)" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

# The web page: livekit-client bundled into web/dist (no CDN at run time).
if [ ! -f "$root/web/dist/app.js" ] || [ "$root/web/package.json" -nt "$root/web/dist/app.js" ] \
   || [ "$root/web/src/app.js" -nt "$root/web/dist/app.js" ]; then
  echo "setup: bundling the web page"
  (cd "$root/web" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
fi

if [ $want_test -eq 1 ]; then
  if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
    (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  venv="$root/target/venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  stamp="$venv/.requirements"
  if ! cmp -s "$root/tests/python/requirements.txt" "$stamp"; then
    echo "setup: installing Python test requirements"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/python/requirements.txt"
    cp "$root/tests/python/requirements.txt" "$stamp"
  fi
fi
echo "setup: ok"
