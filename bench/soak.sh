#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Soak: one blkhost NBD server exporting a qcow2 image, under 64 verifying
# clients at QD16 of mixed reads and writes, a connect/disconnect churn of
# 10 per second and one slow-reading client, for SOAK_SECONDS (default
# 600).  Reports operations, errors, mismatches, the server's RSS and fd
# count at the start and the end, and latency p50/p99/max; exits non-zero
# if there was any error or mismatch, or the server grew by more than 1 MiB
# of RSS or kept an fd.  Every SOAK_SNAPSHOT_SECS (10) a live snapshot is
# taken through the server's control socket (`blkhost nbd --control`) and
# the one three older deleted; at the end the image must pass qemu-img
# check and list exactly the last three.  The clients are bench/soak.py
# (python3-libnbd).
#
#   SOAK_SECONDS=120 bench/soak.sh
#
# Knobs (environment): SOAK_SECONDS measured run (600), SOAK_WARMUP
# seconds of load before the start sample (10), SOAK_CLIENTS (64),
# SOAK_PROCS client processes (4), SOAK_QD (16), SOAK_REGION_MIB per client
# (8), SOAK_CHURN_HZ (10), SOAK_SLOW_READ_MIB size of the slow reader's
# reads (8), SOAK_SLOW_RATE_MIB its drain rate per second (2); BLKHOST,
# BENCH_DIR, BENCH_KEEP as in bench/lib.sh.
set -u
source "$(dirname "$0")/lib.sh"
bench_init qemu-img

: "${SOAK_CLIENTS:=64}" "${SOAK_REGION_MIB:=8}" "${SOAK_SLOW_READ_MIB:=8}"
export SOAK_CLIENTS SOAK_REGION_MIB SOAK_SLOW_READ_MIB
/usr/bin/python3 -c 'import nbd' 2>/dev/null ||
    bench_die "python3-libnbd is not installed"

# Room for every client's region, the churn's 2 MiB and the slow reader's
# two big reads, rounded up to a MiB; a fresh image, so the run allocates.
IMG=$BENCH_DIR/soak.qcow2
SOCK=$BENCH_DIR/soak.sock
size=$(( SOAK_CLIENTS * SOAK_REGION_MIB + 2 + 2 * SOAK_SLOW_READ_MIB ))
rm -f "$IMG"
qemu-img create -q -f qcow2 "$IMG" "${size}M" || bench_die "cannot create $IMG"

CTL=$BENCH_DIR/soak.ctl
export SOAK_CONTROL=$CTL
bench_start blkhost "$SOCK" "$BLKHOST" nbd -f qcow2 -t -e 0 -k "$SOCK" --control "$CTL" "$IMG"
sleep 1     # the socket probe's connection is gone before the first sample
echo "soak: blkhost nbd -f qcow2 -t -e 0 --control (pid ${BENCH_PID[blkhost]}), ${size} MiB image;" \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 "$BENCH_ROOT/bench/soak.py" "$SOCK" "${BENCH_PID[blkhost]}"
rc=$?
kill -0 "${BENCH_PID[blkhost]}" 2>/dev/null || { echo "soak: the server died" >&2; rc=1; }
bench_stop blkhost
if [ $rc = 0 ]; then
    qemu-img check -q "$IMG" || { echo "soak: qemu-img check failed" >&2; rc=1; }
    snaps=$(qemu-img snapshot -l "$IMG" | grep -c " soak-")
    echo "soak: $snaps soak snapshots left in the image (each session keeps its last three)"
fi
exit $rc
