#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The cost of one NBD proxy hop (issue 16).  One export, three ways:
#   (a) direct: nbdkit's file plugin serving a raw image on a Unix socket;
#   (b) blkhost: the nbd client driver on (a), re-exported by
#       `blkhost nbd -f nbd URI`; (b4) the same with connections=4
#       (tests/nbdclient/proxy.lua, since blkhost nbd has no flag for
#       driver options);
#   (c) nbdkit: `nbdkit nbd` (also libnbd) re-exporting (a).
# fio's nbd ioengine drives each with the same rows; the servers take
# turns row by row, BENCH_REPEAT rounds (default 3), and the medians are
# printed with the ratios b/a and c/a (higher is better: 1.00 would be a
# free hop).  The CPU column is the proxy process's CPU time per request
# (user+system, from /proc), what the hop costs beyond waiting.
# A second table measures the client alone (issue 20): libnbd, as the
# driver uses it, against a hand-written simple-reply client on
# plugins/nbd-common's handshake (bench/nbd-client-cost.c), on (a).
#
#   bench/proxy.sh          # BENCH_RUNTIME=10 BENCH_REPEAT=3 BENCH_SIZE=512M
# Not a test: the numbers depend on the machine and its load.
set -u
: "${BENCH_SIZE:=512M}"
: "${BENCH_REPEAT:=3}"
source "$(dirname "$0")/lib.sh"
bench_init nbdkit
[ -f "$BENCH_ROOT/build/drivers/nbd/nbd.so" ] ||
    bench_die "the nbd driver is not built (install libnbd-dev, then ./dev.sh build)"

IMG="$BENCH_DIR/disk.raw"
bench_image "$IMG" "$BENCH_SIZE"
SA="$BENCH_DIR/a.sock"; SB="$BENCH_DIR/b.sock"; SB4="$BENCH_DIR/b4.sock"; SC="$BENCH_DIR/c.sock"
UA="nbd+unix:///?socket=$SA"

bench_start direct "$SA" nbdkit -f -U "$SA" file file="$IMG"
bench_start blkhost "$SB" "$BLKHOST" nbd -f nbd -t -k "$SB" "$UA"
bench_start blkhost4 "$SB4" "$BLKHOST" run "$BENCH_ROOT/tests/nbdclient/proxy.lua" "$SB4" "$UA" connections=4
bench_start nbdkit-nbd "$SC" nbdkit -f -U "$SC" nbd socket="$SA"

# The client alone (issue 20): libnbd against a hand-written simple-reply
# client over plugins/nbd-common's handshake, both on the direct export.
COST="$BENCH_DIR/nbd-client-cost"
cc -O2 -D_GNU_SOURCE -o "$COST" "$BENCH_ROOT/bench/nbd-client-cost.c" \
    -I"$BENCH_ROOT/plugins/nbd-common" -I"$BENCH_ROOT/core/include" \
    -I"$BENCH_ROOT/state/include" -I"$BENCH_ROOT/partition/include" \
    "$BENCH_ROOT/build/plugins/nbd-common/libnbd-common.a" \
    -L"$BENCH_ROOT/build/core" -Wl,-rpath,"$BENCH_ROOT/build/core" -lblkhost \
    $(pkg-config --cflags --libs glib-2.0 gnutls libnbd) ||
    bench_die "cannot build bench/nbd-client-cost.c"
SIZE_BYTES=$(numfmt --from=iec "$BENCH_SIZE")

# label|rw|bs|iodepth
ROWS=("4k randread QD16|randread|4k|16" "1M seq read QD8|read|1M|8")
COLS=(direct blkhost blkhost4 nbdkit-nbd)
declare -A SOCK=([direct]=$SA [blkhost]=$SB [blkhost4]=$SB4 [nbdkit-nbd]=$SC)
declare -A IOPS MBPS CPU

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq 1 "$BENCH_REPEAT"); do
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label rw bs qd <<< "$row"
        for col in "${COLS[@]}"; do
            pid=${BENCH_PID[$col]}
            t0=$(cpu_ticks "$pid")
            r=$(bench_fio "nbd+unix:///?socket=${SOCK[$col]}" "$rw" "$bs" "$qd" 1)
            t1=$(cpu_ticks "$pid")
            read -r iops mbps <<< "$r"
            # µs of proxy CPU per request; fio ran ramp + runtime seconds.
            cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v i="$iops" \
                      -v s="$BENCH_RUNTIME" 'BEGIN { n = i * (s + 1);
                      printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
            echo "bench: round $round: $col: $label: $iops IOPS $mbps MB/s, $cpu us CPU/request" >&2
            IOPS[$col,$label]+=" $iops"; MBPS[$col,$label]+=" $mbps"; CPU[$col,$label]+=" $cpu"
        done
        for client in libnbd hand; do
            read -r iops cpu < <("$COST" "$client" "$SA" "$BENCH_RUNTIME" "$qd" \
                                 "$(numfmt --from=iec "${bs^^}")" "$SIZE_BYTES")
            echo "bench: round $round: client $client: $label: $iops IOPS, $cpu us CPU/request" >&2
            IOPS[$client,$label]+=" $iops"; CPU[$client,$label]+=" $cpu"
        done
    done
done

median() { tr ' ' '\n' <<< "$1" | grep . | sort -g | awk '{v[NR] = $1} END {
    print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }

echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
     "$(fio --version), libnbd $(dpkg-query -W -f='${Version}' libnbd0 2>/dev/null)," \
     "${BENCH_RUNTIME}s per row, median of $BENCH_REPEAT, image $BENCH_SIZE"
echo
printf '| %-18s | %-13s | %-13s | %-13s | %-13s | %5s | %5s | %5s | %-22s |\n' \
    row "(a) direct" "(b) blkhost" "(b4) conns=4" "(c) nbdkit nbd" b/a b4/a c/a "proxy CPU µs/req b, b4, c"
printf '|%s|\n' "---|---|---|---|---|---|---|---|---"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label _ <<< "$row"
    unit=IOPS; V=IOPS
    [[ $label == 1M* ]] && { unit=MB/s; V=MBPS; }
    declare -A m=()
    for col in "${COLS[@]}"; do
        if [ $V = IOPS ]; then m[$col]=$(median "${IOPS[$col,$label]}"); else m[$col]=$(median "${MBPS[$col,$label]}"); fi
    done
    printf '| %-18s | %-13s | %-13s | %-13s | %-13s | %5s | %5s | %5s | %-22s |\n' "$label" \
        "${m[direct]} $unit" "${m[blkhost]} $unit" "${m[blkhost4]} $unit" "${m[nbdkit-nbd]} $unit" \
        "$(ratio "${m[blkhost]}" "${m[direct]}")" "$(ratio "${m[blkhost4]}" "${m[direct]}")" \
        "$(ratio "${m[nbdkit-nbd]}" "${m[direct]}")" \
        "$(median "${CPU[blkhost,$label]}"), $(median "${CPU[blkhost4,$label]}"), $(median "${CPU[nbdkit-nbd,$label]}")"
done

echo
echo "The client alone on (a), one connection, one thread (bench/nbd-client-cost.c):"
echo
printf '| %-18s | %-22s | %-22s |\n' row "libnbd (the nbd driver's)" "hand-written, nbd-common"
printf '|%s|\n' "---|---|---"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label _ <<< "$row"
    printf '| %-18s | %-22s | %-22s |\n' "$label" \
        "$(median "${IOPS[libnbd,$label]}") IOPS, $(median "${CPU[libnbd,$label]}") µs/req" \
        "$(median "${IOPS[hand,$label]}") IOPS, $(median "${CPU[hand,$label]}") µs/req"
done
