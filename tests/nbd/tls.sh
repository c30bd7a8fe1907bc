#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# TLS on the blkhost NBD server against real peers (nbdinfo, nbdcopy,
# nbdsh, qemu-img, qemu-io, qemu-nbd), with X.509 certificates and PSK
# keys made here by certtool and psktool.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"
need certtool psktool qemu-img qemu-io qemu-nbd nbdinfo nbdcopy python3

# A build without GnuTLS says so when TLS is asked for.
printf '%s\n' 'local bh = require "blkhost"' \
    'bh.nbd.server{listen="unix:'"$T"'/probe", tls={mode="require", psk_file="/nonexistent"}}' > "$T/probe.lua"
if ! out=$("$BLKHOST" run "$T/probe.lua" 2>&1) && echo "$out" | grep -q "without GnuTLS"; then
    skip_all "this build has no TLS: $out"
fi
plan 44
# libnbd's python module with Debian's python, whatever python3 is first.
# nbdsh_m URI ARGS...: libnbd refuses tls-* file names in URIs unless told.
nbdsh_m() {
    local u=$1; shift
    /usr/bin/python3 -m nbd -c 'h.set_uri_allow_local_file(True)' -c "h.connect_uri('$u')" "$@"
}

# ---- credentials ----
C="$T/creds"; mkdir -p "$C/srv" "$C/alice" "$C/bob" "$C/evil" "$C/old" "$C/otherca" "$C/psk" "$C/badpsk"
tmpl() { printf '%s\n' "$@" > "$T/tmpl"; }
mkkey() { certtool --generate-privkey --outfile "$1" >/dev/null 2>&1; }
mkkey "$C/ca-key.pem"
tmpl "cn = blkhost test CA" ca cert_signing_key "expiration_days = 30"
certtool --generate-self-signed --load-privkey "$C/ca-key.pem" --template "$T/tmpl" \
    --outfile "$C/srv/ca-cert.pem" >/dev/null 2>&1
signed() {  # DIR KEYNAME CERTNAME CA-DIR template lines...
    local d=$1 k=$2 c=$3 ca=$4; shift 4
    tmpl "$@"; mkkey "$d/$k"
    certtool --generate-certificate --load-privkey "$d/$k" \
        --load-ca-certificate "$ca/ca-cert.pem" --load-ca-privkey "$ca/../ca-key.pem" \
        --template "$T/tmpl" --outfile "$d/$c" >/dev/null 2>&1
}
signed "$C/srv" server-key.pem server-cert.pem "$C/srv" "organization = Test" "cn = localhost" \
    "dns_name = localhost" tls_www_server encryption_key signing_key "expiration_days = 30"
for who in alice bob; do
    cp "$C/srv/ca-cert.pem" "$C/$who/"
    signed "$C/$who" client-key.pem client-cert.pem "$C/srv" "organization = Test" "cn = $who" \
        tls_www_client encryption_key signing_key "expiration_days = 30"
done
cp "$C/srv/ca-cert.pem" "$C/old/"
signed "$C/old" client-key.pem client-cert.pem "$C/srv" "organization = Test" "cn = alice" \
    tls_www_client encryption_key signing_key \
    'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2020-02-01 00:00:00"'
# A second CA that the server does not trust signs "evil".
mkdir -p "$C/otherca/ca"; mkkey "$C/otherca/ca-key.pem"
tmpl "cn = other CA" ca cert_signing_key "expiration_days = 30"
certtool --generate-self-signed --load-privkey "$C/otherca/ca-key.pem" --template "$T/tmpl" \
    --outfile "$C/otherca/ca/ca-cert.pem" >/dev/null 2>&1
cp "$C/srv/ca-cert.pem" "$C/evil/"
signed "$C/evil" client-key.pem client-cert.pem "$C/otherca/ca" "organization = Test" "cn = alice" \
    tls_www_client encryption_key signing_key "expiration_days = 30"
psktool -u alice -p "$C/psk/keys.psk" >/dev/null
psktool -u bob -p "$C/psk/keys.psk" >/dev/null
grep '^alice:' "$C/psk/keys.psk" > "$C/alice.psk"
grep '^bob:' "$C/psk/keys.psk" > "$C/bob.psk"
psktool -u alice -p "$C/badpsk/keys.psk" >/dev/null      # same name, other key
psktool -u mallory -p "$C/mallory.psk" >/dev/null

truncate -s 32M "$T/disk.img"
dd if=/dev/urandom of="$T/disk.img" bs=1M count=2 seek=4 conv=notrunc status=none
cp "$T/disk.img" "$T/orig.img"

# ---- X.509, required, client certificates verified, allow-list ----
S="$T/x509.sock"
start_server x509 listen="unix:$S" persistent=1 export="$T/disk.img,name=secretname" \
    tls=require tls_x509="$C/srv" tls_verify=1 tls_allow="CN=alice,O=Test" ||
    { not_ok "X.509 server starts"; exit 1; }
XU() { echo "nbds+unix:///secretname?socket=$S&tls-certificates=$C/$1"; }

check "the printed URI is nbds+unix:// when TLS is required" grep -q '^nbds+unix:///?socket=' "$T/x509.ready"
out=$(nbdinfo "$(XU alice)" 2>&1)
if echo "$out" | grep -q "with TLS" && echo "$out" | grep -q "export-size: 33554432"; then
    ok "nbdinfo tls-certificates= reads the export over TLS"; else not_ok "nbdinfo tls-certificates= reads the export over TLS"; diag "$out"; fi
check "nbdcopy over X.509 TLS copies the export byte for byte" \
    bash -c "nbdcopy '$(XU alice)' '$T/copy.img' && cmp '$T/copy.img' '$T/orig.img'"
out=$(nbdsh_m "$(XU alice)" -c 'h.pwrite(b"over tls", 1048576); print(h.pread(8, 1048576).decode())' 2>&1)
check "nbdsh tls-certificates= writes and reads back" test "$out" = "over tls"
XOBJ="tls-creds-x509,id=t0,dir=$C/alice,endpoint=client"
check "qemu-img info --object tls-creds-x509 shows 32 MiB" \
    bash -c "qemu-img info --object '$XOBJ' --image-opts 'driver=nbd,path=$S,export=secretname,tls-creds=t0,tls-hostname=localhost' | grep -q 'virtual size: 32 MiB'"
out=$(qemu-io --object "$XOBJ" --image-opts "driver=nbd,path=$S,export=secretname,tls-creds=t0,tls-hostname=localhost" \
      -c 'write -P 0x5a 2M 64k' -c 'read -P 0x5a 2M 64k' 2>&1)
if ! echo "$out" | grep -qiE 'fail|error'; then ok "qemu-io --object tls-creds-x509 writes and verifies a pattern"
else not_ok "qemu-io --object tls-creds-x509 writes and verifies a pattern"; diag "$out"; fi

out=$(nbdinfo "nbd+unix:///secretname?socket=$S" 2>&1)
check "a plaintext nbdinfo is refused under tls=require" test -n "$(echo "$out" | grep -i 'tls')"
out=$(nbdinfo --list "nbd+unix:///?socket=$S" 2>&1)
if ! echo "$out" | grep -q secretname; then ok "a plaintext nbdinfo --list learns no export name"
else not_ok "a plaintext nbdinfo --list learns no export name"; diag "$out"; fi
while read -r res desc; do
    case $res in PASS) ok "raw: $desc";; *) not_ok "raw: $desc";; esac
done < <(/usr/bin/python3 "$SOURCE_ROOT/tests/nbd/tlsopts.py" "$S" 2>&1)

refused() {  # DESC LOG-PATTERN COMMAND...: fails, the log says why, alice still served
    local desc=$1 pat=$2 log=$3; shift 3
    if "$@" >"$T/out" 2>&1; then not_ok "$desc"; diag "$(cat "$T/out")"; return; fi
    # The server logs once the client has gone: wait for the line.
    local i
    for i in $(seq 1 200); do grep -q -- "$pat" "$log" && break; sleep 0.05; done
    if ! grep -q -- "$pat" "$log"; then not_ok "$desc (server log)"; diag "$(cat "$log")"; return; fi
    ok "$desc"
}
refused "a certificate from an untrusted CA is refused, and the log says so" \
    "Certificate is required\|not valid" "$T/x509.log" nbdinfo --size "$(XU evil)"
refused "an expired client certificate is refused, and the log says so" \
    "expired" "$T/x509.log" nbdinfo --size "$(XU old)"
refused "bob's certificate (outside the allow-list) is refused; the log names CN=bob" \
    "CN=bob,O=Test.*allow-list" "$T/x509.log" nbdinfo --size "$(XU bob)"
qemu-img info --object "tls-creds-x509,id=t0,dir=$C/bob,endpoint=client" \
    --image-opts "driver=nbd,path=$S,export=secretname,tls-creds=t0,tls-hostname=localhost" >"$T/out" 2>&1
check "qemu-img outside the allow-list sees why it was refused" \
    grep -q "not on this server's allow-list" "$T/out"
check "after the refusals alice is still served" nbdinfo --size "$(XU alice)"
stop_server x509

# ---- PSK, required, allow-list ----
S="$T/psk.sock"
start_server psk listen="unix:$S" persistent=1 export="$T/disk.img" tls=require \
    tls_psk="$C/psk/keys.psk" tls_allow=alice ||
    { not_ok "PSK server starts"; exit 1; }
PU() { echo "nbds+unix://$1@/?socket=$S&tls-psk-file=$2"; }
check "nbdinfo tls-psk-file= reads the export" bash -c "nbdinfo '$(PU alice "$C/alice.psk")' | grep -q 'with TLS'"
check "nbdcopy over PSK TLS copies the export byte for byte" \
    bash -c "nbdcopy '$(PU alice "$C/alice.psk")' '$T/copy2.img' && cmp '$T/copy2.img' '$T/disk.img'"
out=$(nbdsh_m "$(PU alice "$C/alice.psk")" -c 'print(h.pread(8, 1048576).decode())' 2>&1)
check "nbdsh tls-psk-file= reads what the X.509 client wrote" test "$out" = "over tls"
POBJ="tls-creds-psk,id=p0,dir=$C/psk,endpoint=client,username=alice"
check "qemu-img info --object tls-creds-psk shows 32 MiB" \
    bash -c "qemu-img info --object '$POBJ' --image-opts 'driver=nbd,path=$S,tls-creds=p0' | grep -q 'virtual size: 32 MiB'"
out=$(qemu-io --object "$POBJ" --image-opts "driver=nbd,path=$S,tls-creds=p0" -c 'read -P 0x5a 2M 64k' 2>&1)
if ! echo "$out" | grep -qiE 'fail|error'; then ok "qemu-io --object tls-creds-psk reads the pattern back"
else not_ok "qemu-io --object tls-creds-psk reads the pattern back"; diag "$out"; fi
refused "a wrong PSK is refused; the log names identity alice" \
    "PSK identity 'alice' (wrong key" "$T/psk.log" nbdinfo --size "$(PU alice "$C/badpsk/keys.psk")"
refused "an unknown PSK identity is refused; the log names it" \
    "unknown PSK identity 'mallory'" "$T/psk.log" nbdinfo --size "$(PU mallory "$C/mallory.psk")"
refused "a valid PSK identity outside the allow-list (bob) is refused; the log names it" \
    "'bob' is not on this server's allow-list" "$T/psk.log" nbdinfo --size "$(PU bob "$C/bob.psk")"
check "after the refusals alice is still served over PSK" nbdinfo --size "$(PU alice "$C/alice.psk")"
# nbdcopy opens one connection per thread: -T 4 with -C 4.
before=$(grep -c '^event connect .* tls:alice$' "$T/psk.log")
check "nbdcopy with 4 multi-conn connections over TLS writes the export" \
    bash -c "nbdcopy --connections=4 --threads=4 '$T/orig.img' '$(PU alice "$C/alice.psk")' && nbdcopy -C 4 -T 4 '$(PU alice "$C/alice.psk")' '$T/copy3.img' && cmp '$T/copy3.img' '$T/orig.img'"
# Events reach the log through the server's main loop: wait for them.
for i in $(seq 1 200); do
    after=$(grep -c '^event connect .* tls:alice$' "$T/psk.log")
    [ $((after - before)) -ge 8 ] && break; sleep 0.05
done
check "the two multi-conn copies made 8 TLS connections as alice ($before before, $after after)" \
    test $((after - before)) -ge 8
stop_server psk

# ---- max_clients with TLS ----
S="$T/max.sock"
start_server max listen="unix:$S" persistent=1 max_clients=1 export="$T/disk.img" \
    tls=require tls_psk="$C/psk/keys.psk" || { not_ok "max_clients server starts"; exit 1; }
nbdsh_m "$(PU alice "$C/alice.psk")" -c "
import os, time
open('$T/held', 'w').close()
while not os.path.exists('$T/release'):
    time.sleep(0.05)
" & holder=$!
for i in $(seq 1 200); do [ -e "$T/held" ] && break; sleep 0.05; done
# A second TLS client waits (un-greeted) for the place, then is served.
nbdinfo --size "$(PU alice "$C/alice.psk")" >"$T/second.out" 2>&1 & second=$!
sleep 1
check "with max_clients=1 held by a TLS client, a second TLS client waits" kill -0 $second
touch "$T/release"; wait $holder
wait $second; rc=$?
check "once the first TLS client left, the waiting one is served" test $rc = 0 -a -s "$T/second.out"
check "once the first TLS client left, the next one is served" nbdinfo --size "$(PU alice "$C/alice.psk")"

# Stop with a TLS client in the middle of reading: the server ends, the
# client sees its connection go.
rm -f "$T/held" "$T/release"
nbdsh_m "$(PU alice "$C/alice.psk")" -c "
import os, sys
open('$T/held', 'w').close()
try:
    while not os.path.exists('$T/release'):
        h.pread(4096, 0)
    print('still connected')
except Exception as e:
    print('ended:', e)
" >"$T/holder.out" 2>&1 & holder=$!
for i in $(seq 1 200); do [ -e "$T/held" ] && break; sleep 0.05; done
stop_server max; rc=$?
touch "$T/release"; wait $holder
check "SIGTERM stops a TLS server while a TLS client reads (exit $rc); the client sees the end" \
    bash -c "[ $rc -eq 0 ] && grep -q '^ended:' '$T/holder.out'"

# ---- tls=on: both kinds of client ----
S="$T/on.sock"
start_server on listen="unix:$S" persistent=1 export="$T/disk.img" tls=on tls_psk="$C/psk/keys.psk" ||
    { not_ok "tls=on server starts"; exit 1; }
check "tls=on serves a plaintext client and a PSK client" \
    bash -c "nbdinfo --size 'nbd+unix:///?socket=$S' && nbdinfo '$(PU alice "$C/alice.psk")' | grep -q 'with TLS'"
stop_server on

# ---- blkhost nbd with qemu-nbd's options, against qemu-nbd ----
QO=(--object "tls-creds-x509,id=tls0,dir=$C/srv,endpoint=server"
    --object "authz-simple,id=az0,identity=O=Test,,CN=alice" --tls-creds tls0 --tls-authz az0 -f raw -t)
for srv in blkhost qemu-nbd; do
    S="$T/$srv.sock"
    if [ $srv = blkhost ]; then "$BLKHOST" nbd "${QO[@]}" -v -k "$S" "$T/disk.img" >"$T/$srv.log" 2>&1 &
    else qemu-nbd "${QO[@]}" -k "$S" "$T/orig.img" >"$T/$srv.log" 2>&1 & fi
    pid=$!; at_exit "kill $pid 2>/dev/null"
    for i in $(seq 1 200); do [ -S "$S" ] && break; sleep 0.05; done
    a=$(qemu-img info --object "$XOBJ" --image-opts "driver=nbd,path=$S,tls-creds=t0,tls-hostname=localhost" 2>&1 | grep -c 'virtual size: 32 MiB')
    b=$(qemu-img info --object "tls-creds-x509,id=t0,dir=$C/bob,endpoint=client" --image-opts "driver=nbd,path=$S,tls-creds=t0,tls-hostname=localhost" 2>&1 | grep -c 'virtual size')
    p=$(qemu-img info "nbd+unix:///?socket=$S" 2>&1 | grep -c 'virtual size')
    eval "res_${srv//-/_}='$a$b$p'"
    kill $pid; wait $pid 2>/dev/null
done
check "blkhost nbd --object tls-creds-x509/authz-simple --tls-creds/--tls-authz: alice in, bob and plaintext out, as qemu-nbd ($res_blkhost vs $res_qemu_nbd)" \
    test "$res_blkhost" = "100" -a "$res_qemu_nbd" = "100"
check "blkhost nbd -v prints an nbds+unix:// URI under --tls-creds" grep -q 'nbds+unix://' "$T/blkhost.log"

# ---- option and API errors ----
same_msg() {  # DESC ARGS...: blkhost nbd and qemu-nbd fail alike
    local desc=$1; shift
    local a b
    a=$("$BLKHOST" nbd "$@" 2>&1); ra=$?
    b=$(qemu-nbd "$@" 2>&1); rb=$?
    if [ $ra -eq 1 ] && [ $rb -eq 1 ] && [ "${a#blkhost nbd: }" = "${b#qemu-nbd: }" ]; then ok "$desc"
    else not_ok "$desc"; diag "blkhost ($ra): $a"; diag "qemu-nbd ($rb): $b"; fi
}
PSKO="tls-creds-psk,id=t0,dir=$C/psk,endpoint=server"
same_msg "--tls-creds with -c is refused as qemu-nbd does" --object "$PSKO" --tls-creds t0 -c /dev/nbd0 "$T/disk.img"
same_msg "--tls-authz without --tls-creds is refused as qemu-nbd does" --tls-authz a0 "$T/disk.img"
same_msg "--tls-hostname without --tls-creds is refused as qemu-nbd does" --tls-hostname h "$T/disk.img"
same_msg "--tls-creds naming no object is refused as qemu-nbd does" --object "$PSKO" --tls-creds t9 "$T/disk.img"

api_err() {  # DESC PATTERN TLS-TABLE
    printf '%s\n' 'local bh = require "blkhost"' \
        "bh.nbd.server{listen=\"unix:$T/api.sock\", tls=$3}" > "$T/api.lua"
    check_fails "$1" "$2" "$BLKHOST" run "$T/api.lua"
}
mkdir -p "$T/empty"; printf 'alice:xyz\n' > "$T/bad.psk"
api_err "bh.nbd.server: tls required without credentials says what is missing" \
    "TLS needs credentials" '{mode="require"}'
api_err "bh.nbd.server: an unknown tls mode is refused" "bad tls mode 'maybe'" '{mode="maybe", psk_file="x"}'
api_err "bh.nbd.server: an X.509 directory without server-cert.pem is refused at creation" \
    "needs .*server-cert.pem" "{mode=\"require\", x509_dir=\"$T/empty\"}"
api_err "bh.nbd.server: a malformed PSK file is refused at creation" \
    "IDENTITY:HEXKEY" "{mode=\"require\", psk_file=\"$T/bad.psk\"}"
api_err "bh.nbd.server: an unknown tls field is refused" "unknown tls field 'bogus'" '{mode="on", bogus=1}'
api_err "bh.nbd.server: credentials with tls off are refused" "tls is off" "{mode=\"off\", psk_file=\"$C/alice.psk\"}"
