#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# CPU time a server spends per request, next to its IOPS: on a shared
# machine IOPS swing with everybody else's load, while the server's own
# CPU time per request (utime + stime of its process over the fio run,
# all threads, divided by the requests fio completed) moves much less.
#
#   bench/cpureq.sh [plain|tls] [RW BS IODEPTH] [ROUNDS]
#   BLKHOST_BASE=/path/to/copy/of/build/lua/blkhost bench/cpureq.sh tls randread 4k 32 4
#
# Servers: blkhost (`blkhost nbd`, like run.sh's TLS rows), nbdkit, and
# with BLKHOST_BASE a second blkhost build (see run.sh).  Each round runs
# every server twice in a mirrored order (C B A A B C), BENCH_RUNTIME
# seconds each (default 4).  Prints every run, then per server the
# medians.  TLS uses one PSK and bench/tls-shim.c, as run.sh does.
set -u
: "${BENCH_RUNTIME:=4}"
source "$(dirname "$0")/lib.sh"
MODE=${1:-tls} RW=${2:-randread} BS=${3:-4k} QD=${4:-32} ROUNDS=${5:-3}
bench_init nbdkit
IMG="$BENCH_DIR/disk.raw"
SOCK="$BENCH_DIR/nbd.sock"
bench_image "$IMG" "$BENCH_SIZE"
PSKDIR="$BENCH_DIR/psk"
if [ "$MODE" = tls ]; then
    mkdir -p "$PSKDIR"; rm -f "$PSKDIR/keys.psk"
    psktool -u bench -p "$PSKDIR/keys.psk" >/dev/null || bench_die "psktool failed"
    cc -shared -fPIC -o "$BENCH_DIR/tls-shim.so" "$BENCH_ROOT/bench/tls-shim.c" -ldl ||
        bench_die "cannot build bench/tls-shim.c"
    URI="nbds+unix://bench@/?socket=$SOCK&tls-psk-file=$PSKDIR/keys.psk"
    PRELOAD="$BENCH_DIR/tls-shim.so"
    TLSARGS=(--object "tls-creds-psk,id=t0,dir=$PSKDIR,endpoint=server" --tls-creds t0)
    NBDKIT_TLS=(--tls=require "--tls-psk=$PSKDIR/keys.psk")
else
    URI="nbd+unix:///?socket=$SOCK"
    PRELOAD=
    TLSARGS=()
    NBDKIT_TLS=()
fi
SERVERS=(blkhost nbdkit)
if [ -n "${BLKHOST_BASE:-}" ]; then
    BASE_ROOT=$(cd "$(dirname "$BLKHOST_BASE")/.." && pwd)
    SERVERS+=(base)
fi

# one SERVER: prints "IOPS US_PER_REQUEST"
one() {
    case $1 in
        blkhost) bench_start blkhost "$SOCK" "$BLKHOST" nbd "${TLSARGS[@]}" \
                     -t -e 16 -f raw -k "$SOCK" "$IMG" ;;
        base) bench_start base "$SOCK" env \
                  BLKHOST_PLUGIN_PATH="$BASE_ROOT/drivers:$BASE_ROOT/plugins" \
                  BLKHOST_LUA_PATH="$BENCH_ROOT/lua" "$BLKHOST_BASE" nbd \
                  "${TLSARGS[@]}" -t -e 16 -f raw -k "$SOCK" "$IMG" ;;
        nbdkit) bench_start nbdkit "$SOCK" nbdkit -f -U "$SOCK" "${NBDKIT_TLS[@]}" \
                    file file="$IMG" ;;
    esac
    local pid=${BENCH_PID[$1]} t0 t1
    t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    LD_PRELOAD=$PRELOAD fio --name=bench --ioengine=nbd --uri="$URI" --rw="$RW" \
        --bs="$BS" --iodepth="$QD" --numjobs=1 --size="$BENCH_SIZE" \
        --runtime="$BENCH_RUNTIME" --time_based --output-format=json \
        >"$BENCH_DIR/fio.json" 2>"$BENCH_DIR/fio.err" || cat "$BENCH_DIR/fio.err" >&2
    t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    bench_stop "$1"
    /usr/bin/python3 -c 'import json, os, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.find("{"):])["jobs"][0]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
iops = j["read"]["iops"] + j["write"]["iops"]
ticks = (float(sys.argv[3]) - float(sys.argv[2])) / os.sysconf("SC_CLK_TCK")
print("%.0f %.1f" % (iops, ticks * 1e6 / max(ios, 1)))' "$BENCH_DIR/fio.json" "$t0" "$t1"
}

declare -A ALL
for round in $(seq 1 "$ROUNDS"); do
    # Each server twice, in a mirrored order (C B A A B C), so that load
    # drifting during a round weighs on all of them alike.
    ORDER=("${SERVERS[@]}")
    for srv in "${SERVERS[@]}"; do ORDER=("$srv" "${ORDER[@]}"); done
    for srv in "${ORDER[@]}"; do
        r=$(one "$srv")
        echo "bench: round $round: $srv: $r (IOPS, CPU µs per request)" >&2
        ALL[$srv]+="$r;"
    done
done

echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $MODE $RW $BS" \
     "QD$QD, ${BENCH_RUNTIME}s per run, $ROUNDS rounds of ${#SERVERS[@]}x2 runs"
echo
printf '| %-8s | %-12s | %-22s |\n' server "median IOPS" "median CPU µs / request"
printf '|%s|%s|%s|\n' ---------- -------------- ------------------------
for srv in "${SERVERS[@]}"; do
    IFS=';' read -r -a runs <<< "${ALL[$srv]}"
    iops=$(printf '%s\n' "${runs[@]}" | awk '{ print $1 }' | sort -n |
           awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    cpu=$(printf '%s\n' "${runs[@]}" | awk '{ print $2 }' | sort -n |
          awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    printf '| %-8s | %-12s | %-22s |\n' "$srv" "$iops" "$cpu"
done
