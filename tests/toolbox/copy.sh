#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bh.copy (lua/copy.c), the engine behind `blkhost convert -m/-W`: through
# log filters over delay filters, that -m N keeps up to N (and more than
# one) requests in flight, that in-order writes go one at a time in offset
# order while -W lets them overlap; that convert with -m 1..16 and -W
# makes images qemu-img compare finds identical to qemu-img convert's with
# the same options; failures (a read error, a failing progress callback)
# are raised after the requests in flight end; a driver the script
# registered can be the source (the script lock is let go meanwhile).
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io python3

plan 18

B=$BLKHOST
cd "$T" || exit 1
qemu-img create -q -f qcow2 src.qcow2 16M
qemu-io -c "write -P 1 0 5M" -c "write -P 2 6M 3M" -c "write -z 9M 1M" \
        -c "write -P 3 12M 64k" -c "write -P 4 15M 1M" src.qcow2 >/dev/null

# Reads and writes as the log filter saw them: copy.lua WORKERS ORDER
# copies src.qcow2 (log over a 40 ms delay: r.log) into a new raw (log
# over a 20 ms delay: w.log).
cat >copy.lua <<'EOF'
local bh = require "blkhost"
local src <close> = bh.open("src.qcow2", { format = "qcow2", readonly = true,
  filters = { { "delay", delay = "40ms" }, { "log", file = "r.log" } } })
bh.create("dst.raw", { format = "raw", size = src:size() })
local dst <close> = bh.open("dst.raw", { format = "raw",
  filters = { { "delay", delay = "20ms" }, { "log", file = "w.log" } } })
local seen = 0
bh.copy(src, dst, { workers = tonumber(arg[1]), in_order = arg[2] ~= "W",
                    chunk = 1 << 20, zero_init = true,
                    progress = function(n) seen = seen + n end })
assert(seen == src:size(), "progress saw " .. seen .. " bytes")
EOF
# peak LOG: "N ORDER": most requests of LOG in flight at once, and
# whether they started in increasing offset order (logpeak.py).
peak() { python3 "$SOURCE_ROOT/tests/toolbox/logpeak.py" "$1" | sed -n 1p | cut -d' ' -f2-; }
for run in "4 in" "4 W" "1 in"; do
    set -- $run
    rm -f r.log w.log dst.raw
    if ! out=$("$B" run copy.lua "$1" "$2" 2>&1) ||
       ! qemu-img compare -q src.qcow2 dst.raw; then
        not_ok "bh.copy workers=$1 $2-order: copies"; diag "$out"; continue
    fi
    ok "bh.copy workers=$1 $2-order: the copy is identical (qemu-img compare), progress saw every byte"
    read -r rp _ < <(peak r.log)
    read -r wp wo < <(peak w.log)
    case "$1 $2" in
    "4 in")
        [ "$rp" -gt 1 ] && [ "$rp" -le 4 ] && r=ok || r=bad
        [ "$r" = ok ] && ok "bh.copy workers=4: reads overlap, at most 4 in flight (peak $rp)" ||
            not_ok "bh.copy workers=4: reads overlap, at most 4 in flight (peak $rp)"
        [ "$wp" = 1 ] && [ "$wo" = ordered ] &&
            ok "bh.copy in order: one write at a time, in offset order ($wp, $wo)" ||
            not_ok "bh.copy in order: one write at a time, in offset order ($wp, $wo)"
        ;;
    "4 W")
        [ "$wp" -gt 1 ] && [ "$wp" -le 4 ] &&
            ok "bh.copy in_order=false (-W): writes overlap, at most 4 (peak $wp)" ||
            not_ok "bh.copy in_order=false (-W): writes overlap, at most 4 (peak $wp)"
        ;;
    "1 in")
        [ "$rp" = 1 ] && [ "$wp" = 1 ] &&
            ok "bh.copy workers=1: one request at a time (reads $rp, writes $wp)" ||
            not_ok "bh.copy workers=1: one request at a time (reads $rp, writes $wp)"
        ;;
    esac
done

# convert -m/-W beside qemu-img convert with the same options.
same_convert() {
    local desc=$1 fmt=$2 out; shift 2
    rm -f b.img q.img
    if ! out=$("$B" convert -O "$fmt" "$@" src.qcow2 b.img 2>&1); then
        not_ok "convert $desc -O $fmt"; diag "$out"; return
    fi
    qemu-img convert -O "$fmt" "$@" src.qcow2 q.img
    if out=$(qemu-img compare b.img q.img 2>&1) && out=$(qemu-img compare src.qcow2 b.img 2>&1) &&
       { [ "$fmt" != qcow2 ] || out=$(qemu-img check -q b.img 2>&1); }; then
        ok "convert $desc -O $fmt: identical to qemu-img convert $desc's (and the source)"
    else
        not_ok "convert $desc -O $fmt"; diag "$out"
    fi
}
same_convert "-m 16 -W" qcow2 -m 16 -W
same_convert "-m 3" qcow2 -m 3
same_convert "-m 8 -W -S 0" raw -m 8 -W -S 0
same_convert "-m 2 -S 64k" raw -m 2 -S 64k

# A read failing in the middle: raised with its message once the other
# requests are done; the target stays usable.
cat >fail.lua <<'EOF'
local bh = require "blkhost"
local src <close> = bh.open("src.qcow2", { format = "qcow2", readonly = true,
  filters = { { "error", error = "EIO", op = "read", after = 3 } } })
local dst <close> = bh.open(nil, { format = "memory", size = src:size() })
local ok, err = pcall(bh.copy, src, dst, { workers = 8 })
assert(not ok, "the copy succeeded")
print(err)
dst:write(0, "still usable")
local good <close> = bh.open("src.qcow2", { format = "qcow2", readonly = true })
local ok2, err2 = pcall(bh.copy, good, dst, { workers = 4, progress = function() error("stop here") end })
print(err2)
EOF
out=$("$B" run fail.lua 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | head -1 | grep -qiE "EIO|Input/output|error"; then
    ok "bh.copy: a failing read is raised once the copy stops ($(echo "$out" | head -1 | cut -c1-70))"
else
    not_ok "bh.copy: a failing read is raised once the copy stops"; diag "exit $rc: $out"
fi
if echo "$out" | sed -n 2p | grep -q "stop here"; then
    ok "bh.copy: an error in the progress callback stops the copy and is raised"
else
    not_ok "bh.copy: an error in the progress callback stops the copy and is raised"; diag "$out"
fi

# A driver registered by the script itself as the source: pool threads
# call into the script's Lua, which needs the lock bh.copy lets go of.
cat >luadrv.lua <<'EOF'
local bh = require "blkhost"
local d = bh.driver.register{ name = "pat", open = function() return {} end,
  get_size = function() return 8 << 20 end,
  pread = function(h, count, offset)    -- each MiB holds its number
    local t, pos = {}, offset
    while pos < offset + count do
      local n = math.min(offset + count, ((pos >> 20) + 1) << 20) - pos
      t[#t + 1] = string.rep(string.char(pos >> 20 & 0xff), n)
      pos = pos + n
    end
    return table.concat(t)
  end }
local src <close> = bh.open(nil, { format = "pat", readonly = true })
bh.create("pat.raw", { format = "raw", size = 8 << 20 })
local dst <close> = bh.open("pat.raw", { format = "raw" })
bh.copy(src, dst, { workers = 8, in_order = false, zero_init = true })
assert(dst:read(7 << 20, 4) == "\7\7\7\7")
print("copied")
EOF
out=$(timeout 60 "$B" run luadrv.lua 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = copied ]; then
    ok "bh.copy: from a driver the script registered, 8 workers (no deadlock on the script lock)"
else
    not_ok "bh.copy: from a driver the script registered"; diag "exit $rc: $out"
fi

# The progress callback closing both nodes: the copy keeps them until it
# ends, then the last reference closes the target (its data all there).
cat >close.lua <<'EOF'
local bh = require "blkhost"
local src = bh.open("src.qcow2", { format = "qcow2", readonly = true })
bh.create("closed.qcow2", { format = "qcow2", size = src:size() })
local dst = bh.open("closed.qcow2", { format = "qcow2" })
bh.copy(src, dst, { workers = 4, zero_init = true,
                    progress = function() src:close() dst:close() end })
print(dst:closed(), src:closed())
EOF
out=$("$B" run close.lua 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "true	true" ] && qemu-img compare -q src.qcow2 closed.qcow2 &&
   qemu-img check -q closed.qcow2; then
    ok "bh.copy: nodes closed by the progress callback stay open until the copy ends (target complete, check clean)"
else
    not_ok "bh.copy: nodes closed by the progress callback"; diag "exit $rc: $out"
    diag "$(qemu-img compare src.qcow2 closed.qcow2 2>&1)"
fi

# align (for writes taking whole clusters): a raw source whose data
# areas start and end inside 64k units is written in whole 64k units.
truncate -s 1M al.raw
qemu-io -f raw -c "write -P 3 4k 8k" -c "write -P 4 100k 4k" -c "write -P 5 1000k 24k" al.raw >/dev/null
cat >align.lua <<'EOF'
local bh = require "blkhost"
local s <close> = bh.open("al.raw", { format = "raw", readonly = true })
bh.create("ald.raw", { format = "raw", size = s:size() })
local d <close> = bh.open("ald.raw", { format = "raw", filters = { { "log", file = "al.log" } } })
bh.copy(s, d, { workers = 4, align = 64 << 10, sparse = 64 << 10, zero_init = true,
                chunk = 128 << 10 })
EOF
out=$("$B" run align.lua 2>&1)
writes=$(sed -n 's/.* Write offset=\(0x[0-9a-f]*\) count=\(0x[0-9a-f]*\).*/\1 \2/p' al.log 2>/dev/null | sort | tr '\n' ' ')
if [ -z "$out" ] && qemu-img compare -q -f raw -F raw al.raw ald.raw &&
   [ "$writes" = "0x0 0x10000 0x10000 0x10000 0xf0000 0x10000 " ]; then
    ok "bh.copy align=64k: data inside 64k units is written as whole units (at 0, 64k, 960k), copy identical"
else
    not_ok "bh.copy align=64k: whole 64k units"; diag "$out"; diag "writes: $writes"
fi

# align, the range's last unit short of a boundary and of dst's end (a
# 70000-byte source in a 70144-byte target): completed with zeros into
# a whole write when dst reads as zeros, else written without the flags
# (a compressed write would be refused), the whole units before it apart.
head -c 70000 /dev/urandom >odd.raw
cat >odd.lua <<'EOF'
local bh = require "blkhost"
local s <close> = bh.open("odd.raw", { format = "raw", readonly = true })
for _, zi in ipairs{ true, false } do
  local name = zi and "oddz.raw" or "oddn.raw"
  bh.create(name, { format = "raw", size = 70144 })
  local d <close> = bh.open(name, { format = "raw", filters = { { "log", file = name .. ".log" } } })
  bh.copy(s, d, { align = 64 << 10, sparse = 64 << 10, zero_init = zi, flags = { fua = true } })
end
EOF
out=$("$B" run odd.lua 2>&1)
wz=$(sed -n 's/.* Write \(offset=.*flags=[a-z0-9]*\).*/\1/p' oddz.raw.log 2>/dev/null | sort | tr '\n' ';')
wn=$(sed -n 's/.* Write \(offset=.*flags=[a-z0-9]*\).*/\1/p' oddn.raw.log 2>/dev/null | sort | tr '\n' ';')
if [ -z "$out" ] && cmp -s -n 70000 odd.raw oddz.raw && cmp -s -n 70000 odd.raw oddn.raw &&
   [ "$wz" = "offset=0x0 count=0x10000 flags=fua;offset=0x10000 count=0x1200 flags=fua;" ] &&
   [ "$wn" = "offset=0x0 count=0x10000 flags=fua;offset=0x10000 count=0x1170 flags=0;" ]; then
    ok "bh.copy align: a short last unit is completed with zeros over a zero target, else written without the flags"
else
    not_ok "bh.copy align: a short last unit"; diag "$out"; diag "zero_init: $wz"; diag "other: $wn"
fi

# Refused options.
check_fails "bh.copy: workers=0 is refused" "workers must be 1 to 64" \
    "$B" run - <<'EOF'
local bh = require "blkhost"
local n = bh.open(nil, { format = "memory", size = 1 << 20 })
bh.copy(n, n, { workers = 0 })
EOF
