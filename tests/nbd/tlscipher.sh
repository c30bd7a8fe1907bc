#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The TLS server picks AES-GCM over ChaCha20-Poly1305 when the CPU has
# AES instructions (nbd-tls.c, tls_cpu_has_aes), whatever the client's
# order; otherwise the client's order stands.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
need certtool python3
printf '%s\n' 'local bh = require "blkhost"' \
    'bh.nbd.server{listen="unix:'"$T"'/probe", tls={mode="require", psk_file="/nonexistent"}}' > "$T/probe.lua"
if ! out=$("$BLKHOST" run "$T/probe.lua" 2>&1) && echo "$out" | grep -q "without GnuTLS"; then
    skip_all "this build has no TLS: $out"
fi
plan 1
C="$T/creds"; mkdir -p "$C"
printf '%s\n' "cn = blkhost test CA" ca cert_signing_key "expiration_days = 30" > "$T/ca.tmpl"
printf '%s\n' "cn = localhost" "dns_name = localhost" tls_www_server encryption_key \
    signing_key "expiration_days = 30" > "$T/srv.tmpl"
certtool --generate-privkey --outfile "$T/ca-key.pem" >/dev/null 2>&1
certtool --generate-self-signed --load-privkey "$T/ca-key.pem" --template "$T/ca.tmpl" \
    --outfile "$C/ca-cert.pem" >/dev/null 2>&1
certtool --generate-privkey --key-type rsa --outfile "$C/server-key.pem" >/dev/null 2>&1
certtool --generate-certificate --load-privkey "$C/server-key.pem" \
    --load-ca-certificate "$C/ca-cert.pem" --load-ca-privkey "$T/ca-key.pem" \
    --template "$T/srv.tmpl" --outfile "$C/server-cert.pem" >/dev/null 2>&1
truncate -s 1M "$T/disk.img"
start_server a listen="unix:$T/s.sock" persistent=1 tls=require tls_x509="$C" \
    export="$T/disk.img" || { not_ok "server starts"; exit 1; }
# The same test the server makes, from the kernel's view of the CPU.
expect=chacha
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then expect=aes; fi
if [ "$(uname -m)" = aarch64 ] && grep -qw aes /proc/cpuinfo && grep -qw pmull /proc/cpuinfo; then
    expect=aes
fi
py_tap "$SOURCE_ROOT/tests/nbd/tlscipher.py" "$T/s.sock" "$expect"
stop_server a
