# SPDX-License-Identifier: BSD-3-Clause
# nbd-kernel checks that need no nbd kernel module: device path and URI
# errors, option errors, and bh.nbd.list against a blkhost server.
source "$SOURCE_ROOT/tests/tap.sh"
plan 19
lua() { "$BLKHOST" run - "$@"; }
connect() { # connect LUA-TABLE-BODY: prints the error or "connected"
    lua <<EOF2
local bh = require "blkhost"
local ok, e = pcall(bh.nbd.connect, {$1})
print(ok and "connected" or e)
return ok and 0 or 1
EOF2
}
check_fails "bad input: device /dev/null is not an NBD device" "/dev/null is not an NBD device" \
    connect 'device="/dev/null", uri="nbd://localhost/"'
check_fails "bad input: a regular file as device is not an NBD device" "is not an NBD device" \
    connect "device=\"$SOURCE_ROOT/README.md\", uri=\"nbd://localhost/\""
check_fails "bad input: device that does not exist" "No such file or directory|nbd kernel module is not loaded" \
    connect 'device="/dev/nbd-nosuch", uri="nbd://localhost/"'
check_fails "bad input: neither export nor uri" "exactly one of export" connect 'device="/dev/nbd0"'
check_fails "bad input: export that is not a node" "export must be a node \(from bh.open\), not a string" \
    connect 'device="/dev/nbd0", export="disk.img"'
check_fails "bad input: device missing" "device must be a string" connect 'uri="nbd://h/"'
check_fails "bad input: uri with an unknown scheme" "bad NBD URI 'http://x/': unknown scheme" \
    connect 'device="/dev/nbd0", uri="http://x/"'
check_fails "bad input: nbds (TLS) uri" "TLS \(nbds\) is not supported" \
    connect 'device="/dev/nbd0", uri="nbds://h/"'
check_fails "bad input: nbd+unix uri without socket=" "needs \?socket=PATH" \
    connect 'device="/dev/nbd0", uri="nbd+unix:///x"'
check_fails "bad input: port 99999" "port must be a number from 1 to 65535" \
    connect 'device="/dev/nbd0", uri="nbd://h:99999/"'
check_fails "bad input: unbracketed IPv6 host" "IPv6 address must be in brackets" \
    connect 'device="/dev/nbd0", uri="nbd://::1/"'
check_fails "bad input: block_size=1000" "block size 1000 is not supported" \
    connect 'device="/dev/nbd0", uri="nbd://h/", block_size=1000'
check_fails "bad input: persist with an in-process export" "persist .* needs a uri" \
    lua <<'EOF2'
local bh = require "blkhost"
bh.nbd.connect{device="/dev/nbd0", export=bh.open("", {format="null", size=1048576}), persist=true}
EOF2
check_fails "bad input: unknown option" "unknown option 'bogus'" \
    connect 'device="/dev/nbd0", uri="nbd://h/", bogus=1'
check_fails "bad input: disconnect /dev/null" "not an NBD device" \
    lua <<< 'require("blkhost").nbd.disconnect("/dev/null")'
check_fails "bad input: bh.nbd.list with no server there" "cannot connect to the NBD server" \
    lua <<< "require('blkhost').nbd.list('nbd+unix:///?socket=$T/none')"
truncate -s 1M "$T/a.raw"
check "bh.nbd.list gives each export's name, description, size and read-only flag" bash -c "
\"$BLKHOST\" run - <<'EOF2' | tr '\n' ' ' | grep -qx 'a=first:1048576:false b=nil:1048576:true '
local bh = require 'blkhost'
local img = bh.open('$T/a.raw')
local srv = bh.nbd.server{listen={'unix:$T/s'}}
srv:export(img, {name='a', description='first'})
srv:export(img, {name='b', readonly=true})
for _, e in ipairs(bh.nbd.list('nbd+unix:///?socket=$T/s')) do
  print(e.name .. '=' .. tostring(e.description) .. ':' .. tostring(e.size) .. ':' .. tostring(e.readonly))
end
EOF2"

# Real peers: qemu-nbd and nbdkit answer LIST and INFO.
list_line() { "$BLKHOST" run - "$1" <<'EOF2'
local bh = require 'blkhost'
for _, e in ipairs(bh.nbd.list(arg[1])) do
  print(e.name .. ':' .. tostring(e.size) .. ':' .. tostring(e.readonly))
end
EOF2
}
if command -v qemu-nbd >/dev/null; then
    qemu-nbd -r -t -f raw -x qexp -k "$T/q.sock" "$T/a.raw" >/dev/null 2>&1 &
    qpid=$!
    at_exit "kill $qpid 2>/dev/null"
    for _ in $(seq 100); do [ -S "$T/q.sock" ] && break; sleep 0.05; done
    check "bh.nbd.list against qemu-nbd: export qexp, 1 MiB, read-only" \
        bash -c "$(declare -f list_line); BLKHOST='$BLKHOST' list_line 'nbd+unix:///?socket=$T/q.sock' | grep -qx 'qexp:1048576:true'"
else
    skip "qemu-nbd is not installed"
fi
if command -v nbdkit >/dev/null; then
    nbdkit -f -U "$T/k.sock" -e kexp memory 2M >/dev/null 2>&1 &
    kpid=$!
    at_exit "kill $kpid 2>/dev/null"
    for _ in $(seq 100); do [ -S "$T/k.sock" ] && break; sleep 0.05; done
    check "bh.nbd.list against nbdkit: its export, 2 MiB, writable" \
        bash -c "$(declare -f list_line); BLKHOST='$BLKHOST' list_line 'nbd+unix:///?socket=$T/k.sock' | grep -q ':2097152:false$'"
else
    skip "nbdkit is not installed"
fi
