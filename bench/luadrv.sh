#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The cost of a driver written in Lua (issue 19): a memory-like Lua driver
# (a table of 64 KiB blocks, unwritten ones read as zeros; serialize)
# against the C memory driver, both 1 GiB, served by blkhost over NBD;
# and nbdkit's Lua plugin running the same logic against nbdkit's memory
# plugin.  fio's nbd engine drives each over a Unix socket, the servers
# taking turns row by row, BENCH_REPEAT rounds (default 3).  Shown: median
# IOPS and each server's ratio, Lua IOPS / C IOPS in the same round (1.00:
# Lua costs nothing).  The nbdkit columns need nbdkit-plugin-lua (Debian);
# without it they show "-".  Not a test.
#
#   bench/luadrv.sh                        # BLKHOST=build/lua/blkhost
#   BENCH_RUNTIME=5 BENCH_REPEAT=1 bench/luadrv.sh
set -u
: "${BENCH_REPEAT:=3}"
source "$(dirname "$0")/lib.sh"
bench_init nbdkit

SOCK="$BENCH_DIR/nbd.sock"
URI="nbd+unix:///?socket=$SOCK"
# The driver logic both Lua servers run: blocks[i] holds block i once
# written; reads of unwritten blocks come from one string of zeros.
cat > "$BENCH_DIR/logic.lua" <<'LUA'
local BLOCK = 65536
local ZERO = string.rep("\0", BLOCK)
local M = {}
function M.new(size) return { size = size, blocks = {} } end
function M.pread(h, count, offset)
  local out, at, last = {}, offset, offset + count
  while at < last do
    local i, off = at // BLOCK, at % BLOCK
    local n = math.min(BLOCK - off, last - at)
    local b = h.blocks[i] or ZERO
    out[#out + 1] = (off == 0 and n == BLOCK) and b or b:sub(off + 1, off + n)
    at = at + n
  end
  return #out == 1 and out[1] or table.concat(out)
end
function M.pwrite(h, buf, offset)
  local at = 0
  while at < #buf do
    local pos = offset + at
    local i, off = pos // BLOCK, pos % BLOCK
    local n = math.min(BLOCK - off, #buf - at)
    local b = h.blocks[i] or ZERO
    h.blocks[i] = b:sub(1, off) .. buf:sub(at + 1, at + n) .. b:sub(off + n + 1)
    at = at + n
  end
end
return M
LUA
cat > "$BENCH_DIR/luamem.lua" <<LUA
local M = dofile("$BENCH_DIR/logic.lua")
return {
  name = "luamem",
  open = function(opts) return M.new(1073741824) end,
  get_size = function(h) return h.size end,
  pread = M.pread,
  pwrite = function(h, buf, offset) M.pwrite(h, buf, offset) end,
}
LUA
cat > "$BENCH_DIR/nbdkit-luamem.lua" <<LUA
local M = dofile("$BENCH_DIR/logic.lua")
function open(readonly) return M.new(1073741824) end
function get_size(h) return h.size end
function pread(h, count, offset, flags) return M.pread(h, count, offset) end
function pwrite(h, buf, offset, flags) M.pwrite(h, buf, offset) end
LUA
cat > "$BENCH_DIR/serve.lua" <<'LUA'
local bh = require "blkhost"
local sock, fmt, dir = arg[1], arg[2], arg[3]
if fmt == "luamem" then bh.plugin.load(dir .. "/luamem.lua") end
local d <close> = bh.open(nil, { format = fmt, size = "1G" })
local srv <close> = bh.nbd.server{ listen = { "unix:" .. sock }, persistent = true }
srv:export(d, { name = "" })
bh.loop()
srv:stop()
LUA

have_nbdkit_lua=0
nbdkit lua --version >/dev/null 2>&1 && have_nbdkit_lua=1
start() {
    case $1 in
    blkhost-c) bench_start "$1" "$SOCK" "$BLKHOST" run "$BENCH_DIR/serve.lua" "$SOCK" memory "$BENCH_DIR" ;;
    blkhost-lua) bench_start "$1" "$SOCK" "$BLKHOST" run "$BENCH_DIR/serve.lua" "$SOCK" luamem "$BENCH_DIR" ;;
    nbdkit-c) bench_start "$1" "$SOCK" nbdkit -f -U "$SOCK" memory 1G ;;
    nbdkit-lua) bench_start "$1" "$SOCK" nbdkit -f -U "$SOCK" lua "$BENCH_DIR/nbdkit-luamem.lua" ;;
    esac
}

# label|rw|bs|iodepth|numjobs
ROWS=("4k randread QD16|randread|4k|16|1" "1M seq read QD8|read|1M|8|1")
SERVERS=(blkhost-c blkhost-lua)
[ $have_nbdkit_lua = 1 ] && SERVERS+=(nbdkit-c nbdkit-lua)
declare -A R    # R[server,label]: "IOPS MBPS" lines, one per round
bench_rounds


echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
     "$(fio --version), $(nbdkit --version), ${BENCH_RUNTIME}s per row," \
     "median of $BENCH_REPEAT rounds"
echo
echo "| row | blkhost C memory | blkhost Lua | blkhost ratio | nbdkit C memory | nbdkit Lua | nbdkit ratio |"
echo "|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label _ <<< "$row"
    cols=("$(bench_median_num $(bench_iops "${R[blkhost-c,$label]}"))" "$(bench_median_num $(bench_iops "${R[blkhost-lua,$label]}"))"
          "$(bench_median_num $(bench_round_ratios "${R[blkhost-lua,$label]}" "${R[blkhost-c,$label]}"))")
    if [ $have_nbdkit_lua = 1 ]; then
        cols+=("$(bench_median_num $(bench_iops "${R[nbdkit-c,$label]}"))" "$(bench_median_num $(bench_iops "${R[nbdkit-lua,$label]}"))"
               "$(bench_median_num $(bench_round_ratios "${R[nbdkit-lua,$label]}" "${R[nbdkit-c,$label]}"))")
    else
        cols+=(- - -)
    fi
    echo "| $label | ${cols[0]} | ${cols[1]} | ${cols[2]} | ${cols[3]} | ${cols[4]} | ${cols[5]} |"
done
