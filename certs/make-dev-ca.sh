#!/usr/bin/env bash
# make-dev-ca.sh - create a development CA and a TLS server certificate for
# jonction (SIP over TLS, HTTPS/WSS). FOR DEVELOPMENT ONLY; see README.md.
#
# Usage: ./make-dev-ca.sh [--force] [NAME|IP ...]
#
#   Always included in the certificate: localhost, 127.0.0.1, ::1.
#   Extra DNS names and IPv4/IPv6 addresses can be given as arguments:
#       ./make-dev-ca.sh sip.example.org 192.0.2.10
#
#   Output (next to this script, in dev/):
#       ca.pem       development CA certificate (EC P-256, 10 years)
#       ca.key       CA private key (mode 0600)
#       server.pem   server certificate followed by the CA certificate
#       server.key   server private key (mode 0600)
#       server.sans  SAN list the server certificate was issued for
#
#   Idempotent: an existing CA is kept. The server certificate is issued
#   again only when the SAN list changed, it does not chain to the CA, it
#   expires within 30 days, or --force is given. To start over with a new CA,
#   delete the dev/ directory (and remove the old CA from your trust stores).
#
# Only needs bash and the openssl command line tool (OpenSSL 1.1.1 or later).

set -euo pipefail

CA_DAYS=3650      # ~10 years
SERVER_DAYS=825   # maximum validity accepted by Apple platforms for TLS leaves

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
out_dir="$script_dir/dev"

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

die() { echo "make-dev-ca: $*" >&2; exit 1; }
log() { echo "make-dev-ca: $*"; }

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"

# ---- arguments ---------------------------------------------------------
force=0
extra=()
for arg in "$@"; do
    case "$arg" in
        -f|--force) force=1 ;;
        -h|--help)  usage; exit 0 ;;
        --)         ;;
        -*)         die "unknown option: $arg (try --help)" ;;
        *)          extra+=("$arg") ;;
    esac
done

is_ipv4() {
    local IFS=. o
    local -a parts
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    read -r -a parts <<<"$1"
    for o in "${parts[@]}"; do
        (( 10#$o <= 255 )) || return 1
    done
}

is_ipv6() {
    # Loose check: hex digits and colons (optionally a trailing dotted quad),
    # at least one "::" or seven colons. openssl rejects anything malformed.
    [[ $1 =~ ^[0-9A-Fa-f:.]+$ && $1 == *:* ]] || return 1
    [[ $1 == *::* ]] || [[ $(tr -cd ':' <<<"$1") == ":::::::" ]] || \
        [[ $1 == *.* ]]
}

is_dns() {
    # Letters, digits, hyphens and dots; an optional leading "*." wildcard.
    [[ $1 =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$ ]]
}

# ---- build the SAN list ------------------------------------------------
# Entries are "DNS:name" / "IP:addr"; duplicates dropped, order kept.
sans=("DNS:localhost" "IP:127.0.0.1" "IP:::1")
first_extra_dns=""
for item in "${extra[@]+"${extra[@]}"}"; do
    if is_ipv4 "$item" || is_ipv6 "$item"; then
        entry="IP:$(LC_ALL=C tr '[:upper:]' '[:lower:]' <<<"$item")"
    elif is_dns "$item"; then
        name=$(LC_ALL=C tr '[:upper:]' '[:lower:]' <<<"${item%.}")
        entry="DNS:$name"
        [[ -n $first_extra_dns ]] || first_extra_dns=$name
    else
        die "not a DNS name or IP address: $item"
    fi
    dup=0
    for s in "${sans[@]}"; do [[ $s == "$entry" ]] && dup=1; done
    (( dup )) || sans+=("$entry")
done
san_line=$(IFS=,; echo "${sans[*]}")
# Order-insensitive form used to decide whether to re-issue.
san_key=$(printf '%s\n' "${sans[@]}" | LC_ALL=C sort)

server_cn=${first_extra_dns:-localhost}

mkdir -p "$out_dir"
ca_key="$out_dir/ca.key"
ca_pem="$out_dir/ca.pem"
srv_key="$out_dir/server.key"
srv_pem="$out_dir/server.pem"
srv_sans="$out_dir/server.sans"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gen_key() {  # gen_key FILE : new EC P-256 private key, mode 0600
    ( umask 077
      openssl genpkey -algorithm EC \
          -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
          -out "$1.tmp" )
    mv -f "$1.tmp" "$1"
    chmod 0600 "$1"
}

pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey; }
pubkey_of_key()  { openssl pkey -in "$1" -pubout; }

# ---- CA ----------------------------------------------------------------
new_ca=0
if [[ -f $ca_pem && -f $ca_key ]]; then
    [[ $(pubkey_of_cert "$ca_pem") == "$(pubkey_of_key "$ca_key")" ]] || \
        die "$ca_pem and $ca_key do not match; delete $out_dir to start over"
    chmod 0600 "$ca_key"
    log "keeping existing CA: $(openssl x509 -in "$ca_pem" -noout -subject)"
elif [[ -f $ca_pem || -f $ca_key ]]; then
    die "only one of ca.pem / ca.key exists in $out_dir; delete $out_dir to start over"
else
    log "creating development CA (EC P-256, $CA_DAYS days)"
    gen_key "$ca_key"
    # A host name and date in the CA name make it easy to tell several
    # development CAs apart in a trust store.
    ca_cn="jonction development CA ($(hostname 2>/dev/null || echo unknown) $(date -u +%Y-%m-%d))"
    cat >"$tmp/ca.cnf" <<CNF
[req]
distinguished_name = dn
prompt             = no
x509_extensions    = v3_ca
[dn]
O  = jonction development
CN = $ca_cn
[v3_ca]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
CNF
    openssl req -new -x509 -config "$tmp/ca.cnf" -key "$ca_key" \
        -sha256 -days "$CA_DAYS" -set_serial "0x$(openssl rand -hex 16)" \
        -out "$ca_pem.tmp"
    mv -f "$ca_pem.tmp" "$ca_pem"
    chmod 0644 "$ca_pem"
    new_ca=1
fi

# ---- server certificate ------------------------------------------------
reason=""
if (( force )); then
    reason="--force given"
elif (( new_ca )); then
    reason="new CA"
elif [[ ! -f $srv_pem || ! -f $srv_key || ! -f $srv_sans ]]; then
    reason="no server certificate yet"
elif [[ $(cat "$srv_sans") != "$san_key" ]]; then
    reason="SAN list changed"
elif ! openssl verify -CAfile "$ca_pem" "$srv_pem" >/dev/null 2>&1; then
    reason="server certificate does not verify against the CA"
elif ! openssl x509 -in "$srv_pem" -noout -checkend $((30 * 86400)) >/dev/null; then
    reason="server certificate expires within 30 days"
elif [[ $(pubkey_of_cert "$srv_pem") != "$(pubkey_of_key "$srv_key")" ]]; then
    reason="server.pem and server.key do not match"
fi

if [[ -z $reason ]]; then
    log "server certificate is up to date ($san_line)"
    exit 0
fi

log "issuing server certificate ($reason): CN=$server_cn, SAN=$san_line"
# New key each time the certificate is issued.
gen_key "$srv_key"
cat >"$tmp/server.cnf" <<CNF
[req]
distinguished_name = dn
prompt             = no
[dn]
O  = jonction development
CN = $server_cn
[v3_server]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
# clientAuth too: SIP TLS peers may reuse the connection in both directions
# and some require a client certificate from the gateway.
extendedKeyUsage       = serverAuth, clientAuth
subjectAltName         = $san_line
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
CNF
openssl req -new -config "$tmp/server.cnf" -key "$srv_key" -sha256 \
    -out "$tmp/server.csr"
if ! openssl x509 -req -in "$tmp/server.csr" -CA "$ca_pem" -CAkey "$ca_key" \
        -sha256 -days "$SERVER_DAYS" -set_serial "0x$(openssl rand -hex 16)" \
        -extfile "$tmp/server.cnf" -extensions v3_server \
        -out "$tmp/leaf.pem" 2>"$tmp/x509.err"; then
    cat "$tmp/x509.err" >&2
    die "signing the server certificate failed"
fi
# server.pem = leaf certificate followed by the issuing CA.
cat "$tmp/leaf.pem" "$ca_pem" >"$srv_pem.tmp"
mv -f "$srv_pem.tmp" "$srv_pem"
chmod 0644 "$srv_pem"
printf '%s\n' "$san_key" >"$srv_sans"

openssl verify -CAfile "$ca_pem" "$srv_pem" >/dev/null \
    || die "verification of the new server certificate failed"
log "done: $srv_pem (valid $SERVER_DAYS days), key $srv_key"
