#!/usr/bin/env bash
# Regenerates the Rust bindings for the H.323 ASN.1 modules (src/h323/asn/modules/*.asn) into
# src/h323/asn/src/generated.rs (crate jonction-asn1). The output is committed: normal builds never run the compiler.
#
#   integration/gen-asn1.sh
#
# Installs rasn-compiler's CLI (crate rasn-compiler, feature "cli", binary rasn_compiler_cli)
# at the pinned version if it is not on PATH or in $TOOLS_ROOT/bin.
# The module copies are already edited (see their -- CHANGED: headers; the OPTIONAL
# extension additions come from integration/asn1-optional-additions.py, run once per copy); the
# output is then post-processed by integration/asn1-constrained-delegates.py (see its header).
# The generated code needs the rasn version pinned in Cargo.toml (rasn-compiler 0.16 targets rasn 0.30).
set -euo pipefail

RASN_COMPILER_VERSION=0.16.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_ROOT=${TOOLS_ROOT:-${CARGO_TARGET_DIR:-$ROOT/target}/tools}
ASN=$ROOT/src/h323/asn
OUT=$ASN/src/generated.rs

cli=""
if [ -x "$TOOLS_ROOT/bin/rasn_compiler_cli" ]; then
    cli=$TOOLS_ROOT/bin/rasn_compiler_cli
elif command -v rasn_compiler_cli >/dev/null 2>&1; then
    cli=$(command -v rasn_compiler_cli)
fi
if [ -z "$cli" ] || ! "$cli" --version 2>/dev/null | grep -q "$RASN_COMPILER_VERSION"; then
    cargo install rasn-compiler --version "=$RASN_COMPILER_VERSION" --features cli --locked \
        --root "$TOOLS_ROOT"
    cli=$TOOLS_ROOT/bin/rasn_compiler_cli
fi

mkdir -p "$(dirname "$OUT")"
# The three modules go in together: H323-MESSAGES imports from the other two.
"$cli" \
    -m "$ASN/modules/H235-SECURITY-MESSAGES.asn" \
    -m "$ASN/modules/MULTIMEDIA-SYSTEM-CONTROL.asn" \
    -m "$ASN/modules/H323-MESSAGES.asn" \
    -o "$OUT"
python3 "$ROOT/integration/asn1-constrained-delegates.py" "$OUT"
echo "wrote $OUT ($(wc -c <"$OUT") bytes)"
