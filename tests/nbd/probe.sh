#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A raw image served without a format (probed) cannot be turned into a
# qcow2 by a client: libnbd writes a qcow2 header naming a backing file
# into block 0 and gets EPERM from `blkhost nbd IMG`, from
# `blkhost run examples/export.lua IMG` and, as the reference, from
# `qemu-nbd IMG`.  With -f raw the same write succeeds, as with
# qemu-nbd -f raw.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-nbd qemu-img nbdinfo
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip_all "python3-libnbd is not installed"
plan 22

echo secret >"$T/secret"
qemu-img create -q -f qcow2 -b "$T/secret" -F raw "$T/hdr.qcow2" 1M
head -c 512 "$T/hdr.qcow2" >"$T/hdr.bin"
printf hello >"$T/hello.bin"
{ printf hello; head -c 507 /dev/zero; } >"$T/hellosec.bin"
truncate -s 1M "$T/orig.img"
printf 'sector one' | dd of="$T/orig.img" bs=1 seek=512 conv=notrunc status=none

# serve NAME CMD...: run a server on $T/NAME.sock until the end (or
# unserve NAME), log in $T/NAME.log; wait until it answers.
serve() {
    local name=$1; shift
    "$@" >"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    at_exit "kill $! 2>/dev/null"
    local i
    for i in $(seq 1 200); do
        nbdinfo --size "nbd+unix:///?socket=$T/$name.sock" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    diag "server $name did not start:"; diag "$(cat "$T/$name.log")"
    return 1
}
unserve() {
    local pid; eval "pid=\${$1_pid}"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

# nbdop NAME OP OFFSET ARG: write FILE / zero LEN / trim LEN at OFFSET;
# prints OK or the NBD error (EPERM, ...).
nbdop() {
    /usr/bin/python3 - "$T/$1.sock" "$2" "$3" "$4" <<'PY'
import nbd, sys
sock, op, off, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
h = nbd.NBD()
h.connect_unix(sock)
try:
    if op == "write":
        h.pwrite(open(arg, "rb").read(), off)
    elif op == "zero":
        h.zero(int(arg), off)
    elif op == "trim":
        h.trim(int(arg), off)
    print("OK")
except nbd.Error as e:
    print(e.errno if e.errno else e.string)
h.shutdown()
PY
}
is() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; diag "got '$2', want '$3'"; fi; }

# ---- blkhost nbd without -f ----
cp "$T/orig.img" "$T/bh.img"
serve bh "$BLKHOST" nbd -t -k "$T/bh.sock" "$T/bh.img" || true
if grep -q "probing guessed raw.*-f raw" "$T/bh.log"; then
    ok "blkhost nbd IMG: a warning says the format was guessed and to name it with -f raw"
else not_ok "blkhost nbd IMG: a warning says the format was guessed and to name it with -f raw"
    diag "$(cat "$T/bh.log")"; fi
is "blkhost nbd IMG (probed raw): a qcow2 header with a backing file written to block 0 fails with EPERM" \
    "$(nbdop bh write 0 "$T/hdr.bin")" EPERM
if cmp -s "$T/orig.img" "$T/bh.img"; then ok "the refused header left the image byte-identical"
else not_ok "the refused header left the image byte-identical"; fi
is "blkhost nbd IMG: a 5-byte write inside sector 0 that forms no header succeeds" \
    "$(nbdop bh write 0 "$T/hello.bin")" OK
is "blkhost nbd IMG: write-zeroes over sector 0 succeeds (zeros never probe)" \
    "$(nbdop bh zero 0 512)" OK
is "blkhost nbd IMG: a whole sector 0 starting 'hello' succeeds" \
    "$(nbdop bh write 0 "$T/hellosec.bin")" OK
unserve bh
check "the image still probes as raw for qemu-img" \
    bash -c "qemu-img info '$T/bh.img' | grep -q '^file format: raw'"

# ---- qemu-nbd without -f, on the same input: the reference ----
cp "$T/orig.img" "$T/q.img"
serve q qemu-nbd -t -k "$T/q.sock" "$T/q.img" || true
is "qemu-nbd IMG (probed raw), same header write: EPERM too" \
    "$(nbdop q write 0 "$T/hdr.bin")" EPERM
if cmp -s "$T/orig.img" "$T/q.img"; then ok "qemu-nbd left its copy byte-identical too"
else not_ok "qemu-nbd left its copy byte-identical too"; fi
# qemu-nbd asks for 512-byte requests on a probed raw image, so it gets
# the zeroing and the whole sector only.
is "qemu-nbd IMG: write-zeroes over sector 0 succeeds there too" \
    "$(nbdop q zero 0 512)" OK
is "qemu-nbd IMG: the whole sector 0 starting 'hello' succeeds there too" \
    "$(nbdop q write 0 "$T/hellosec.bin")" OK
unserve q
if cmp -s "$T/q.img" "$T/bh.img"; then ok "blkhost and qemu-nbd leave the same bytes after the same requests"
else not_ok "blkhost and qemu-nbd leave the same bytes after the same requests"; fi

# ---- discard over sector 0 (--discard=unmap) ----
cp "$T/orig.img" "$T/d.img"
serve d "$BLKHOST" nbd -t --discard=unmap -k "$T/d.sock" "$T/d.img" || true
is "blkhost nbd --discard=unmap IMG: trim over sector 0 succeeds" \
    "$(nbdop d trim 0 4096)" OK
is "blkhost nbd --discard=unmap IMG: the header is still refused" \
    "$(nbdop d write 0 "$T/hdr.bin")" EPERM
unserve d

# ---- -f raw: the user said raw, so the bytes are the client's ----
cp "$T/orig.img" "$T/bhraw.img"
serve bhraw "$BLKHOST" nbd -t -f raw -k "$T/bhraw.sock" "$T/bhraw.img" || true
if grep -q "probing guessed" "$T/bhraw.log"; then
    not_ok "blkhost nbd -f raw: no probing warning"; diag "$(cat "$T/bhraw.log")"
else ok "blkhost nbd -f raw: no probing warning"; fi
is "blkhost nbd -f raw: the same header write succeeds" \
    "$(nbdop bhraw write 0 "$T/hdr.bin")" OK
unserve bhraw
cp "$T/orig.img" "$T/qraw.img"
serve qraw qemu-nbd -t -f raw -k "$T/qraw.sock" "$T/qraw.img" || true
is "qemu-nbd -f raw: the same header write succeeds" \
    "$(nbdop qraw write 0 "$T/hdr.bin")" OK
unserve qraw
if cmp -s "$T/qraw.img" "$T/bhraw.img"; then ok "-f raw: blkhost and qemu-nbd wrote the same bytes"
else not_ok "-f raw: blkhost and qemu-nbd wrote the same bytes"; fi
check "-f raw: which is why the file now probes as qcow2" \
    bash -c "qemu-img info -U '$T/bhraw.img' | grep -q '^file format: qcow2'"

# ---- the example script takes the same path ----
cp "$T/orig.img" "$T/ex.img"
serve ex "$BLKHOST" run "$SOURCE_ROOT/examples/export.lua" "$T/ex.img" \
    --socket "$T/ex.sock" || true
is "blkhost run examples/export.lua IMG: the header write fails with EPERM" \
    "$(nbdop ex write 0 "$T/hdr.bin")" EPERM
if cmp -s "$T/orig.img" "$T/ex.img"; then ok "examples/export.lua: the image is byte-identical"
else not_ok "examples/export.lua: the image is byte-identical"; fi
unserve ex
if grep -q "probing guessed raw" "$T/ex.log"; then
    ok "examples/export.lua IMG: the probing warning is printed"
else not_ok "examples/export.lua IMG: the probing warning is printed"; diag "$(cat "$T/ex.log")"; fi
