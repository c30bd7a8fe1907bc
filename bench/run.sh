#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Side-by-side NBD benchmark: blkhost (examples/export.lua), nbdkit (file
# plugin) and qemu-nbd (-f raw) serve the same fully allocated 1 GiB raw
# file over a Unix socket, and fio's nbd ioengine drives each with the
# same rows.  Servers take turns row by row (so a change in machine load
# hits all of them alike; every other round in reverse order); with
# BENCH_REPEAT=N the rounds repeat and each server keeps its best, and the
# medians of the rounds are printed too.  Prints IOPS and MB/s per server and the ratio
# blkhost / best peer.  Not a test: the numbers depend on the machine.
#
# The TLS rows serve with TLS required and the same PSK on every server
# (blkhost nbd and qemu-nbd with --object tls-creds-psk, nbdkit
# --tls=require --tls-psk); fio connects with nbds+unix:// through
# bench/tls-shim.c (see there why).  BENCH_TLS=0 skips them.
#
# The O_DIRECT rows ("direct ...") serve a 2 GiB file on disk with
# --cache=none: blkhost nbd with --aio=io_uring and --aio=native against
# qemu-nbd with --aio=native and --aio=io_uring, the page cache dropped
# before each server starts; they print the median of the rounds and
# blkhost's ratio to the best qemu-nbd mode.  BENCH_DIRECT=0 skips them;
# BENCH_DIRECT_SIZE sets the file's size (2G).
#
# BENCH_ONLY=REGEX keeps the rows whose label matches (e.g. BENCH_ONLY=TLS,
# BENCH_ONLY=direct).
#
# BLKHOST_BASE=PATH adds a fourth server, another blkhost build (e.g. a
# copy of build/ made before a change), run the same way in the same
# turns, and a column blkhost / base: before and after in one run.  A copy
# of a build tree finds its own plugins through BLKHOST_PLUGIN_PATH, which
# is set to the copy's drivers/ and plugins/, BLKHOST_LUA_PATH to lua/.
#
#   bench/run.sh                 # BLKHOST=build/lua/blkhost by default
#   BENCH_RUNTIME=5 BENCH_REPEAT=3 BLKHOST=/tmp/build/lua/blkhost bench/run.sh
set -u
source "$(dirname "$0")/lib.sh"
bench_init nbdkit qemu-nbd

IMG="$BENCH_DIR/disk.raw"
SOCK="$BENCH_DIR/nbd.sock"
URI="nbd+unix:///?socket=$SOCK"
bench_image "$IMG" "$BENCH_SIZE"

# TLS: one PSK for every server, and fio allowed to read it.
PSKDIR="$BENCH_DIR/psk"
TLS_URI="nbds+unix://bench@/?socket=$SOCK&tls-psk-file=$PSKDIR/keys.psk"
if [ "${BENCH_TLS:-1}" = 1 ]; then
    command -v psktool >/dev/null || bench_die "psktool is not installed (gnutls-bin)"
    mkdir -p "$PSKDIR"; rm -f "$PSKDIR/keys.psk"
    psktool -u bench -p "$PSKDIR/keys.psk" >/dev/null
    cc -shared -fPIC -o "$BENCH_DIR/tls-shim.so" "$BENCH_ROOT/bench/tls-shim.c" -ldl ||
        bench_die "cannot build bench/tls-shim.c"
fi

# label|rw|bs|iodepth|numjobs[|tls]
ROWS=(
    "4k randread QD16|randread|4k|16|1"
    "4k randread QD32|randread|4k|32|1"
    "4k randwrite QD16|randwrite|4k|16|1"
    "1M seq read QD8|read|1M|8|1"
    "1M seq write QD8|write|1M|8|1"
    "4k randread QD16 2 jobs|randread|4k|16|2"
)
if [ "${BENCH_TLS:-1}" = 1 ]; then
    ROWS+=("TLS 1M seq read QD8|read|1M|8|1|tls"
           "TLS 4k randread QD16|randread|4k|16|1|tls"
           "TLS 4k randread QD32|randread|4k|32|1|tls")
fi
# O_DIRECT: label|rw|bs|iodepth
DIRECT_ROWS=()
if [ "${BENCH_DIRECT:-1}" = 1 ]; then
    DIRECT_ROWS=("direct 4k randread QD32|randread|4k|32"
                 "direct 4k randwrite QD32|randwrite|4k|32"
                 "direct 1M seq read QD8|read|1M|8")
fi
if [ -n "${BENCH_ONLY:-}" ]; then
    KEEP=()
    for row in "${ROWS[@]}"; do [[ ${row%%|*} =~ $BENCH_ONLY ]] && KEEP+=("$row"); done
    ROWS=("${KEEP[@]}")
    KEEP=()
    for row in "${DIRECT_ROWS[@]}"; do [[ ${row%%|*} =~ $BENCH_ONLY ]] && KEEP+=("$row"); done
    DIRECT_ROWS=("${KEEP[@]}")
fi
SERVERS=(blkhost nbdkit qemu-nbd)
if [ -n "${BLKHOST_BASE:-}" ]; then
    command -v "$BLKHOST_BASE" >/dev/null || bench_die "$BLKHOST_BASE is not built"
    BASE_ROOT=$(cd "$(dirname "$BLKHOST_BASE")/.." && pwd)
    SERVERS+=(base)
fi
declare -A R ALL
DIRECT_SERVERS=(blkhost-io_uring blkhost-native qemu-nbd-native qemu-nbd-io_uring)
declare -A RD
DIMG="$BENCH_DIR/direct.raw"
: "${BENCH_DIRECT_SIZE:=2G}"
[ ${#DIRECT_ROWS[@]} -gt 0 ] && bench_image "$DIMG" "$BENCH_DIRECT_SIZE"

# One O_DIRECT server, cold: SERVER (name-aio) on $SOCK serving $DIMG.
start_direct() {
    local name=${1%-*} aio=${1##*-}
    bench_drop_caches
    case $name in
        blkhost) bench_start "$1" "$SOCK" "$BLKHOST" nbd -t -e 16 -f raw \
                     --cache=none --aio="$aio" -k "$SOCK" "$DIMG" ;;
        qemu-nbd) bench_start "$1" "$SOCK" qemu-nbd -t -e 16 -f raw \
                      --cache=none --aio="$aio" -k "$SOCK" "$DIMG" ;;
    esac
}

for round in $(seq 1 "$BENCH_REPEAT"); do
    # Every other round in reverse order, so that load that rises or
    # falls during a row does not always favour the same server.
    ORDER=("${SERVERS[@]}")
    if [ $((round % 2)) = 0 ]; then
        ORDER=(); for srv in "${SERVERS[@]}"; do ORDER=("$srv" "${ORDER[@]}"); done
    fi
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label rw bs qd jobs tls <<< "$row"
        for srv in "${ORDER[@]}"; do
            if [ -n "$tls" ]; then
                PSKOBJ=(--object "tls-creds-psk,id=t0,dir=$PSKDIR,endpoint=server" --tls-creds t0)
                case $srv in
                    blkhost) bench_start blkhost "$SOCK" "$BLKHOST" nbd "${PSKOBJ[@]}" \
                                 -t -e 16 -f raw -k "$SOCK" "$IMG" ;;
                    base) bench_start base "$SOCK" env \
                              BLKHOST_PLUGIN_PATH="$BASE_ROOT/drivers:$BASE_ROOT/plugins" BLKHOST_LUA_PATH="$BENCH_ROOT/lua" \
                              "$BLKHOST_BASE" nbd "${PSKOBJ[@]}" \
                              -t -e 16 -f raw -k "$SOCK" "$IMG" ;;
                    nbdkit) bench_start nbdkit "$SOCK" nbdkit -f -U "$SOCK" --tls=require \
                                --tls-psk="$PSKDIR/keys.psk" file file="$IMG" ;;
                    qemu-nbd) bench_start qemu-nbd "$SOCK" qemu-nbd "${PSKOBJ[@]}" \
                                  -t -e 16 -f raw -k "$SOCK" "$IMG" ;;
                esac
                r=$(LD_PRELOAD="$BENCH_DIR/tls-shim.so" bench_fio "$TLS_URI" "$rw" "$bs" "$qd" "$jobs")
            else
            case $srv in
                blkhost) bench_start_blkhost "$SOCK" "$IMG" ;;
                base) bench_start base "$SOCK" env \
                          BLKHOST_PLUGIN_PATH="$BASE_ROOT/drivers:$BASE_ROOT/plugins" BLKHOST_LUA_PATH="$BENCH_ROOT/lua" \
                          "$BLKHOST_BASE" run "$BENCH_ROOT/examples/export.lua" \
                          "$IMG" --socket "$SOCK" ;;
                nbdkit) bench_start_nbdkit "$SOCK" "$IMG" ;;
                qemu-nbd) bench_start_qemu_nbd "$SOCK" "$IMG" raw ;;
            esac
            r=$(bench_fio "$URI" "$rw" "$bs" "$qd" "$jobs")
            fi
            bench_stop "$srv"
            echo "bench: round $round: $srv: $label: $r" >&2
            R[$srv,$label]=$(bench_best "$r" "${R[$srv,$label]:-0 0}")
            ALL[$srv,$label]+="$r;"
        done
    done
    for row in "${DIRECT_ROWS[@]}"; do
        IFS='|' read -r label rw bs qd <<< "$row"
        for srv in "${DIRECT_SERVERS[@]}"; do
            start_direct "$srv"
            r=$(BENCH_SIZE=$BENCH_DIRECT_SIZE bench_fio "$URI" "$rw" "$bs" "$qd" 1)
            bench_stop "$srv"
            echo "bench: round $round: $srv: $label: $r" >&2
            RD[$srv,$label]="${RD[$srv,$label]:-}${RD[$srv,$label]:+|}$r"
        done
    done
done

echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
     "$(fio --version), ${BENCH_RUNTIME}s per row, best of $BENCH_REPEAT, image $BENCH_SIZE"
if [ ${#ROWS[@]} -gt 0 ]; then
    echo
    bench_header blkhost nbdkit qemu-nbd
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ <<< "$row"
        bench_row "$label" "${R[blkhost,$label]}" "${R[nbdkit,$label]}" "${R[qemu-nbd,$label]}"
    done
fi
if [ -n "${BLKHOST_BASE:-}" ]; then
    echo
    echo "base: $BLKHOST_BASE"
    echo
    bench_header blkhost base
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ <<< "$row"
        bench_row "$label" "${R[blkhost,$label]}" "${R[base,$label]}"
    done
fi
if [ "$BENCH_REPEAT" -gt 1 ] && [ ${#ROWS[@]} -gt 0 ]; then
    # med SRV LABEL: the median round of a server on a row
    med() { local IFS=';'; bench_median ${ALL[$1,$2]}; }
    echo
    echo "Medians of the $BENCH_REPEAT rounds:"
    echo
    bench_header blkhost nbdkit qemu-nbd
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label _ <<< "$row"
        bench_row "$label" "$(med blkhost "$label")" "$(med nbdkit "$label")" \
            "$(med qemu-nbd "$label")"
    done
    if [ -n "${BLKHOST_BASE:-}" ]; then
        echo
        bench_header blkhost base
        for row in "${ROWS[@]}"; do
            IFS='|' read -r label _ <<< "$row"
            bench_row "$label" "$(med blkhost "$label")" "$(med base "$label")"
        done
    fi
fi

if [ ${#DIRECT_ROWS[@]} -gt 0 ]; then
    echo
    echo "O_DIRECT (--cache=none), ${BENCH_DIRECT_SIZE} file on $(df --output=fstype "$BENCH_DIR" | tail -1)," \
         "caches dropped before each server, median of $BENCH_REPEAT;" \
         "ratio: blkhost / best qemu-nbd mode"
    echo
    printf '| %-24s ' "row"
    for n in "${DIRECT_SERVERS[@]}"; do printf '| %-29s ' "$n IOPS / MB/s"; done
    printf '| %-14s | %-14s |\n' "ratio io_uring" "ratio native"
    printf '|%s' "--------------------------"
    for n in "${DIRECT_SERVERS[@]}"; do printf '|%s' "-------------------------------"; done
    printf '|%s|%s|\n' "----------------" "----------------"
    for row in "${DIRECT_ROWS[@]}"; do
        IFS='|' read -r label _ <<< "$row"
        declare -A M=()
        printf '| %-24s ' "$label"
        for srv in "${DIRECT_SERVERS[@]}"; do
            IFS='|' read -r -a all <<< "${RD[$srv,$label]}"
            M[$srv]=$(bench_median "${all[@]}")
            printf '| %-29s ' "$(echo "${M[$srv]}" | awk '{printf "%s / %s", $1, $2}')"
        done
        printf '| %-14s | %-14s |\n' \
            "$(bench_ratio "${M[blkhost-io_uring]}" "${M[qemu-nbd-native]}" "${M[qemu-nbd-io_uring]}")" \
            "$(bench_ratio "${M[blkhost-native]}" "${M[qemu-nbd-native]}" "${M[qemu-nbd-io_uring]}")"
    done
fi
