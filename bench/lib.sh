# SPDX-License-Identifier: BSD-3-Clause
# Helpers for side-by-side NBD benchmarks; sourced by bench/run.sh and
# other bench/*.sh scripts (e.g. a qcow2 comparison).
#
#   source bench/lib.sh
#   bench_init                          # checks tools, makes $BENCH_DIR
#   bench_image "$BENCH_DIR/disk.raw" 1G
#   bench_start blkhost "$BLKHOST" run examples/export.lua IMG --socket S
#   bench_start nbdkit nbdkit -f -U S file file=IMG
#   r=$(bench_fio "nbd+unix:///?socket=S" randread 4k 16 1)   # "IOPS MBPS"
#   bench_stop blkhost
#   bench_row "4k randread QD16" "$r_blkhost" "$r_nbdkit" "$r_qemu"
#
# Knobs (environment): BENCH_RUNTIME seconds per fio row (default 10),
# BENCH_REPEAT rounds, keeping each server's best (default 1),
# BENCH_SIZE of the test image (default 1G), BENCH_DIR scratch directory
# (default a fresh one under /var/tmp; removed at exit unless BENCH_KEEP=1).

: "${BENCH_RUNTIME:=10}"
: "${BENCH_SIZE:=1G}"
: "${BENCH_REPEAT:=1}"
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${BLKHOST:=$BENCH_ROOT/build/lua/blkhost}"
declare -A BENCH_PID

bench_die() { echo "bench: $*" >&2; exit 1; }

bench_init() {
    local c
    for c in fio "$BLKHOST" /usr/bin/python3 "$@"; do
        command -v "$c" >/dev/null 2>&1 || bench_die "$c is not installed (or not built)"
    done
    fio --enghelp=nbd >/dev/null 2>&1 || bench_die "this fio has no nbd ioengine"
    if [ -z "${BENCH_DIR:-}" ]; then
        BENCH_DIR=$(mktemp -d /var/tmp/blkhost-bench.XXXXXX)
        [ "${BENCH_KEEP:-0}" = 1 ] || trap 'bench_stop_all; rm -rf "$BENCH_DIR"' EXIT
    fi
    mkdir -p "$BENCH_DIR"
    trap 'bench_stop_all' INT TERM
}

# bench_image PATH SIZE: a fully allocated raw image of random data, so
# that no server can answer reads from holes.
bench_image() {
    local path=$1 size=$2 mib
    mib=$(numfmt --from=iec "$size")
    mib=$((mib / 1048576))
    [ -f "$path" ] && [ "$(stat -c %s "$path")" -eq $((mib * 1048576)) ] && return 0
    echo "bench: writing a $size test image $path" >&2
    dd if=/dev/urandom of="$path" bs=1M count="$mib" status=none conv=fsync ||
        bench_die "cannot write $path"
    cat "$path" >/dev/null   # every server starts with it in the page cache
}

# bench_wait_socket PATH PID: until PATH is a socket accepting connections
# (at most 30 s: a loaded machine can take seconds to start a TLS server).
bench_wait_socket() {
    local path=$1 pid=$2 i
    for i in $(seq 1 600); do
        if [ -S "$path" ] && /usr/bin/python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$path" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# bench_start NAME SOCKET CMD...: start a server in the background (its
# output in $BENCH_DIR/NAME.log) and wait for SOCKET.
bench_start() {
    local name=$1 sock=$2; shift 2
    rm -f "$sock"
    "$@" >"$BENCH_DIR/$name.log" 2>&1 &
    BENCH_PID[$name]=$!
    bench_wait_socket "$sock" "${BENCH_PID[$name]}" ||
        { cat "$BENCH_DIR/$name.log" >&2; bench_die "$name did not start"; }
}

bench_stop() {
    local pid=${BENCH_PID[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "BENCH_PID[$1]"
}

bench_stop_all() {
    local n
    for n in "${!BENCH_PID[@]}"; do bench_stop "$n"; done
}

# The three servers, each on a Unix socket, serving IMG read-write with the
# host page cache (each one's default).
bench_start_blkhost() {  # SOCKET IMG
    bench_start blkhost "$1" "$BLKHOST" run "$BENCH_ROOT/examples/export.lua" \
        "$2" --socket "$1"
}
bench_start_nbdkit() {   # SOCKET IMG
    bench_start nbdkit "$1" nbdkit -f -U "$1" file file="$2"
}
bench_start_qemu_nbd() { # SOCKET IMG [FORMAT]
    bench_start qemu-nbd "$1" qemu-nbd -t -e 16 -f "${3:-raw}" -k "$1" "$2"
}

# bench_fio URI RW BS IODEPTH NUMJOBS: prints "IOPS MBPS" (MB = 10^6 bytes).
bench_fio() {
    local uri=$1 rw=$2 bs=$3 qd=$4 jobs=$5 json
    json=$(fio --name=bench --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" \
               --iodepth="$qd" --numjobs="$jobs" --size="$BENCH_SIZE" \
               --runtime="$BENCH_RUNTIME" --time_based --ramp_time=1 \
               --group_reporting --output-format=json 2>"$BENCH_DIR/fio.err") ||
        { cat "$BENCH_DIR/fio.err" >&2; echo "0 0"; return 1; }
    echo "$json" | /usr/bin/python3 -c 'import json, sys
t = sys.stdin.read()
j = json.loads(t[t.find("{"):])["jobs"][0]
iops = j["read"]["iops"] + j["write"]["iops"]
bw = (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6
print("%.0f %.1f" % (iops, bw))'
}

# bench_best A B...: the result with the most IOPS ("IOPS MBPS" each).
bench_best() {
    printf '%s\n' "$@" | sort -k1,1nr | head -1
}

# bench_median A B...: the result with the median IOPS ("IOPS MBPS" each;
# the lower middle one for an even count).
bench_median() {
    local n=$#
    printf '%s\n' "$@" | sort -k1,1n | sed -n "$(( (n + 1) / 2 ))p"
}

# bench_drop_caches: write back and drop the page cache, so a server
# starts cold (needs root; says once when it cannot).
bench_drop_caches() {
    sync
    if ! { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
        [ -n "${BENCH_NO_DROP_SAID:-}" ] ||
            echo "bench: cannot drop the page cache (not root?); rows start warm" >&2
        BENCH_NO_DROP_SAID=1
    fi
}

# bench_ratio OURS PEER1 PEER2...: ours / the best peer (by IOPS).
bench_ratio() {
    local ours=$1; shift
    /usr/bin/python3 -c 'import sys
ours = float(sys.argv[1].split()[0])
best = max(float(p.split()[0]) for p in sys.argv[2:])
print("%.2f" % (ours / best) if best else "n/a")' "$ours" "$@"
}

# bench_header NAME...: the table head for servers NAME...
bench_header() {
    local n
    printf '| %-22s ' "row"
    for n in "$@"; do printf '| %-20s ' "$n IOPS / MB/s"; done
    printf '| %-7s |\n' "ratio"
    printf '|%s' "------------------------"
    for n in "$@"; do printf '|%s' "----------------------"; done
    printf '|%s|\n' "---------"
}

# bench_row LABEL OURS PEER...: one table line; ratio = ours / best peer.
bench_row() {
    local label=$1 r; shift
    printf '| %-22s ' "$label"
    for r in "$@"; do printf '| %-20s ' "$(echo "$r" | awk '{printf "%s / %s", $1, $2}')"; done
    printf '| %-7s |\n' "$(bench_ratio "$@")"
}

# bench_rounds: BENCH_REPEAT rounds of every row of ROWS
# ("label|rw|bs|qd|jobs") against every server of SERVERS, each started by
# the caller's `start SERVER` on $URI; the caller's associative array R
# gets R[server,label] += one "IOPS MBPS" line per round.
bench_rounds() {
    local round row label rw bs qd jobs srv r
    for round in $(seq 1 "$BENCH_REPEAT"); do
        for row in "${ROWS[@]}"; do
            IFS='|' read -r label rw bs qd jobs <<< "$row"
            for srv in "${SERVERS[@]}"; do
                start "$srv"
                r=$(bench_fio "$URI" "$rw" "$bs" "$qd" "$jobs")
                bench_stop "$srv"
                echo "bench: round $round: $srv: $label: $r" >&2
                R[$srv,$label]+="$r"$'\n'
            done
        done
    done
}

# bench_median_num NUMBERS...: the middle one (the upper middle for an
# even count).
bench_median_num() {
    printf '%s\n' "$@" | sort -g | awk '{l[NR] = $0} END {print l[int(NR / 2) + 1]}'
}
# bench_iops LINES: the IOPS column of "IOPS MBPS" lines.
bench_iops() { printf '%s' "$1" | awk '{print $1}'; }
# bench_round_ratios A B: A's IOPS / B's IOPS, round by round (the servers
# of one round ran minutes apart at most, so the machine's load cancels).
bench_round_ratios() {
    paste <(bench_iops "$1") <(bench_iops "$2") | awk '{printf "%.2f\n", $2 ? $1 / $2 : 0}'
}
