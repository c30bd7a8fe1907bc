#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbd client driver against nbdkit and qemu-nbd: the bytes it writes
# are the server's (nbdcopy, qemu-img compare), its extents are nbdinfo
# --map's, the flags it sends are the ones asked for (nbdkit's log
# filter), and `blkhost nbd -f nbd URI` proxies an export.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbdclient/lib.sh"
need nbdkit qemu-nbd qemu-img nbdinfo nbdcopy
plan 20

MiB=1048576
nbdkit_start mem memory 64M || exit 1
M=$(uri mem)

out=$("$BLKHOST" info "$M" 2>&1)
if grep -q 'file format: raw' <<<"$out" && grep -q 'virtual size: 64 MiB' <<<"$out"; then
    ok "blkhost info nbd+unix://: the URI picks the nbd driver, raw probed over it, 64 MiB"
else not_ok "blkhost info nbd+unix://: the URI picks the nbd driver, raw probed over it, 64 MiB"; diag "$out"; fi
out=$("$BLKHOST" info -f nbd "$M" 2>&1)
if grep -q 'file format: nbd' <<<"$out" && grep -q 'nbd block status: true' <<<"$out"; then
    ok "blkhost info -f nbd: the driver alone, with block status negotiated"
else not_ok "blkhost info -f nbd: the driver alone, with block status negotiated"; diag "$out"; fi

# Opened without a format, the export is probed raw and keeps the probe
# guard: a qcow2 header written over block 0 is refused.
out=$("$BLKHOST" run - "$M" 2>&1 <<'LUA'
local bh = require "blkhost"
local d <close> = bh.open(arg[1])
local ok, err = pcall(d.write, d, 0, "QFI\xfb\0\0\0\3" .. string.rep("\0", 504))
print(ok, err)
LUA
)
if grep -q "false.*refused: it would make an image whose format was guessed as raw probe as qcow2" <<<"$out"; then
    ok "nbd+unix:// without a format: probed raw, a qcow2 header over block 0 is refused"
else not_ok "nbd+unix:// without a format: probed raw, a qcow2 header over block 0 is refused"; diag "$out"; fi

# Data: the same operations on the export and on a local file.
truncate -s 64M "$T/expect.img"
check "nbdkit memory: writes (one of 40 MiB, unaligned, FUA), zeroes and a discard run" \
    client ops "$M" "$T/expect.img"
check "nbdkit memory: nbdcopy of the export equals what was written" \
    bash -c "nbdcopy '$M' '$T/copy.img' && cmp '$T/copy.img' '$T/expect.img'"
check "nbdkit memory: qemu-img compare of the export and the expected file" \
    qemu-img compare -f raw -F raw "$T/expect.img" "$M"

# Extents: ours against nbdinfo --map, on the export just written.
client extents "$M" >"$T/ours.map" 2>&1
map_of "$M" >"$T/theirs.map"
if [ -s "$T/ours.map" ] && diff "$T/ours.map" "$T/theirs.map" >"$T/map.diff"; then
    ok "nbdkit memory: extents (hole/zero) equal nbdinfo --map ($(wc -l <"$T/ours.map") runs)"
else not_ok "nbdkit memory: extents (hole/zero) equal nbdinfo --map"; diag "$(cat "$T/map.diff" "$T/ours.map")"; fi

# qemu-nbd over a sparse file.
truncate -s 64M "$T/q.img"
truncate -s 64M "$T/qexpect.img"
qemu_nbd_start q -t -f raw -x disk "$T/q.img" || exit 1
Q=$(uri q disk)
check "qemu-nbd: the same writes, zeroes and discard run" client ops "$Q" "$T/qexpect.img"
check "qemu-nbd: qemu-img compare of the export and the expected file" \
    qemu-img compare -f raw -F raw "$T/qexpect.img" "$Q"
check "qemu-nbd: the served file itself equals the expected file" cmp "$T/q.img" "$T/qexpect.img"
client extents "$Q" >"$T/qours.map" 2>&1
map_of "$Q" >"$T/qtheirs.map"
if [ -s "$T/qours.map" ] && diff "$T/qours.map" "$T/qtheirs.map" >"$T/qmap.diff"; then
    ok "qemu-nbd: extents equal nbdinfo --map ($(wc -l <"$T/qours.map") runs)"
else not_ok "qemu-nbd: extents equal nbdinfo --map"; diag "$(cat "$T/qmap.diff" "$T/qours.map")"; fi

# The proxy: blkhost nbd -f nbd URI.
proxy_start px "$M" || exit 1
P=$(uri px)
check "proxy: nbdcopy through blkhost nbd -f nbd equals the direct export" \
    bash -c "nbdcopy '$P' '$T/pcopy.img' && cmp '$T/pcopy.img' '$T/expect.img'"
check "proxy: qemu-img compare of the proxy and the direct export" \
    qemu-img compare -f raw -F raw "$P" "$M"
check "proxy: qemu-io writes through the proxy land in the export" \
    bash -c "qemu-io -f raw -c 'write -P 0x6b 10M 3M' '$P' >/dev/null && qemu-io -f raw -c 'read -P 0x6b 10M 3M' '$M' | grep -q 'read 3145728/3145728'"
if diff <(map_of "$P") <(map_of "$M") >"$T/pmap.diff"; then
    ok "proxy: nbdinfo --map through the proxy equals the direct export's"
else not_ok "proxy: nbdinfo --map through the proxy equals the direct export's"; diag "$(cat "$T/pmap.diff")"; fi

# Multi-conn: nbdkit memory offers it; 4 connections used in parallel.
proxy_lua_start px4 "$M" connections=4 || exit 1
out=$("$BLKHOST" info -f nbd -o connections=4 "$M" 2>&1)
if grep -q 'nbd connections: 4' <<<"$out"; then ok "multi-conn: connections=4 opens 4 connections to nbdkit"
else not_ok "multi-conn: connections=4 opens 4 connections to nbdkit"; diag "$out"; fi
head -c 24M /dev/urandom >"$T/rand.img"
check "multi-conn: nbdcopy --connections=4 into the 4-connection proxy, read back equal" \
    bash -c "nbdcopy --connections=4 --requests=16 '$T/rand.img' '$(uri px4)' && nbdcopy '$M' '$T/back.img' && cmp -n 25165824 '$T/back.img' '$T/rand.img'"
out=$("$BLKHOST" info -f nbd -o connections=4 "$Q" 2>&1)
if grep -q 'nbd connections: 1' <<<"$out" && grep -q 'does not offer multi-conn' <<<"$out"; then
    ok "multi-conn: qemu-nbd without multi-conn gets 1 connection and a note"
else not_ok "multi-conn: qemu-nbd without multi-conn gets 1 connection and a note"; diag "$out"; fi

# TCP: nbd://127.0.0.1:PORT/ (a port bound and let go just before).
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nbdkit -f -i 127.0.0.1 -p "$port" --exit-with-parent memory 16M >"$T/tcp.log" 2>&1 &
tpid=$!; disown $tpid; at_exit "kill $tpid 2>/dev/null"
for i in $(seq 1 100); do nbdinfo --can connect "nbd://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.05; done
check "TCP: nbd://127.0.0.1:PORT/ writes, and nbdcopy reads the same back" \
    bash -c "head -c 1M /dev/urandom >'$T/tcp.img' && \
             '$BLKHOST' convert -n -f raw -O nbd '$T/tcp.img' 'nbd://127.0.0.1:$port/' && \
             nbdcopy 'nbd://127.0.0.1:$port/' '$T/tcpback.img' && cmp -n 1048576 '$T/tcp.img' '$T/tcpback.img'"

# The flags that reach the server, from nbdkit's log filter.
nbdkit_start lg --filter=log memory 16M logfile="$T/lg.txt" || exit 1
"$BLKHOST" run - "$(uri lg)" >"$T/lg.out" 2>&1 <<'LUA'
local bh = require "blkhost"
local d <close> = bh.open(arg[1], {format = "nbd", discard = "unmap"})
d:write(0, string.rep("a", 4096), {fua = true})
d:zero(65536, 65536, {may_unmap = true})
d:zero(4 * 65536, 65536, {fast = true})
d:zero(8 * 65536, 65536)
d:discard(16 * 65536, 65536)
d:flush()
LUA
if grep -q 'Write id=.* fua=1' "$T/lg.txt" && grep -q 'Zero id=.* offset=0x10000 .*trim=1' "$T/lg.txt" &&
   grep -q 'Zero id=.* offset=0x40000 .*fast=1' "$T/lg.txt" && grep -q 'Zero id=.* offset=0x80000 .*trim=0 fua=0 fast=0' "$T/lg.txt" &&
   grep -q 'Trim id=.* offset=0x100000' "$T/lg.txt" && grep -q 'Flush id=' "$T/lg.txt"; then
    ok "flags: FUA write, zero with may-unmap (trim=1), fast zero, plain zero, trim and flush reach nbdkit as asked"
else not_ok "flags: FUA write, zero with may-unmap (trim=1), fast zero, plain zero, trim and flush reach nbdkit as asked"; diag "$(cat "$T/lg.out" "$T/lg.txt")"; fi
