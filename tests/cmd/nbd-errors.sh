#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd` refuses bad command lines the way qemu-nbd does: status 1,
# one line on stderr naming the problem, and nothing started (no socket,
# no pid file, no process left).  Cases that get as far as opening the
# image name -f raw, since a probed raw image adds its warning line (as
# qemu-nbd's does).  Where Debian's qemu-nbd has the option,
# it is run with the same arguments and must refuse them too.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/cmd/lib.sh"
need qemu-img

qemu-img create -q -f raw "$T/d.raw" 1M
qemu-img create -q -f qcow2 "$T/d.qcow2" 1M
HAVE_QEMU_NBD=$(command -v qemu-nbd || true)

# refused DESC PATTERN QEMU(yes|no) ARGS...
refused() {
    local desc=$1 pat=$2 q=$3; shift 3
    rm -f "$T/e.sock" "$T/e.pid"
    local out rc
    out=$(cd "$T" && timeout 20 "$BLKHOST" nbd --pid-file "$T/e.pid" "$@" 2>&1 </dev/null)
    rc=$?
    local lines
    lines=$(printf '%s\n' "$out" | grep -c .)
    if [ $rc -ne 1 ]; then
        not_ok "$desc"; diag "status $rc, expected 1: $out"
    elif ! printf '%s' "$out" | grep -qE -- "$pat"; then
        not_ok "$desc"; diag "output did not match /$pat/: $out"
    elif [ "$lines" -gt 2 ] || { [ "$lines" -eq 2 ] && ! printf '%s' "$out" | grep -q "^Try 'blkhost nbd --help'"; }; then
        not_ok "$desc"; diag "more than one line: $out"
    elif [ -e "$T/e.sock" ] || [ -e "$T/e.pid" ]; then
        not_ok "$desc"; diag "it started something: $(ls "$T")"
    else
        ok "$desc"
    fi
    if [ "$q" = yes ] && [ -n "$HAVE_QEMU_NBD" ]; then
        if (cd "$T" && timeout 20 qemu-nbd "$@" >/dev/null 2>&1 </dev/null); then
            not_ok "$desc: qemu-nbd refuses it too"
        else
            ok "$desc: qemu-nbd refuses it too"
        fi
    fi
}

plan 64

S="-k $T/e.sock"
refused "-n twice refused" "-n and --cache can only be specified once" yes $S -n -n d.raw
refused "-n with --cache refused" "-n and --cache can only be specified once" yes $S -n --cache=none d.raw
refused "--cache=bogus refused" "Invalid cache mode 'bogus'" yes $S --cache=bogus d.raw
refused "--aio given twice refused" "--aio can only be specified once" yes $S --aio=threads --aio=threads d.raw
refused "--aio=bogus refused" "Invalid aio mode 'bogus'" yes $S --aio=bogus d.raw
refused "--aio=native without O_DIRECT refused" "aio=native needs cache=none" yes $S -f raw --aio=native d.raw
refused "--discard given twice refused" "--discard can only be specified once" yes $S --discard=unmap --discard=ignore d.raw
refused "--discard=bogus refused" "Invalid discard mode 'bogus'" yes $S --discard=bogus d.raw
refused "--detect-zeroes=bogus refused" "Failed to parse detect_zeroes mode" yes $S --detect-zeroes=bogus d.raw
refused "--detect-zeroes=unmap without --discard=unmap refused" \
    "detect-zeroes to unmap is not allowed without setting discard operation to unmap" yes \
    $S --detect-zeroes=unmap d.raw
refused "-o -512 (negative offset) refused" "Invalid offset '-512'" no $S -o -512 d.raw
refused "-o abc refused" "Invalid offset 'abc'" yes $S -o abc d.raw
refused "-o past the end refused" "past the end" yes $S -f raw -o 2097152 d.raw
refused "-P 0 refused" "Invalid partition 0" no $S -P 0 d.raw
refused "-P x refused" "Invalid partition 'x'" no $S -P x d.raw
refused "-P 1 on a disk without a partition table refused" "Could not find partition 1" no $S -f raw -P 1 d.raw
refused "-e -1 (--shared below 0) refused" "Invalid shared device number '-1'" yes $S -e -1 d.raw
refused "--shared=many refused" "Invalid shared device number 'many'" yes $S --shared=many d.raw
refused "-k relative/path (relative socket) refused" "socket path must be absolute" yes -k rel.sock d.raw
refused "-p 0 refused" "Invalid port '0'" no -p 0 d.raw
refused "-p 65536 refused" "Invalid port '65536'" no -p 65536 d.raw
refused "no FILE refused" "Invalid number of arguments" yes $S
refused "two FILEs refused" "Invalid number of arguments" yes $S d.raw d.qcow2
refused "unknown option refused" "unknown option '--bogus'" yes $S --bogus d.raw
refused "-x longer than 4096 bytes refused" "export name .* too long" yes $S -x "$(printf 'x%.0s' $(seq 4097))" d.raw
refused "-D longer than 4096 bytes refused" "export description .* too long" yes $S -D "$(printf 'x%.0s' $(seq 4097))" d.raw
refused "-l snapshot.bogus=1 refused" "Failed in parsing snapshot param 'snapshot.bogus=1'" yes $S -l snapshot.bogus=1 d.qcow2
refused "-L with a FILE refused" "List mode is incompatible with a file name" yes $S -L d.raw
refused "-L with -x refused" "List mode is incompatible with per-device settings" yes $S -L -x name
refused "-L with --fork refused" "List mode is incompatible with forking" yes $S -L --fork
refused "missing FILE refused" "missing.raw" yes $S -f raw missing.raw
refused "-f bogus refused" "bogus" yes $S -f bogus d.raw
refused "-c on a missing device refused" "Cannot open /nonexistent/nbd0: No such file or directory" no \
    -c /nonexistent/nbd0 d.raw
refused "-c on a file that is no NBD device: the error reaches the parent" \
    "not an NBD device|not available" no -f raw -c /dev/null d.raw
refused "--fork with a missing FILE: the error reaches the parent" "missing.raw" no $S --fork -f raw missing.raw
refused "a socket path too long refused" "socket path" no -f raw -k "/$(printf 'x%.0s' $(seq 120))/s" d.raw

# -V and -h succeed and print.
check "-V prints the version" bash -c '"$BLKHOST" nbd -V | grep -q "^blkhost nbd [0-9]"'
check "--help lists every qemu-nbd option" bash -c '
    h=$("$BLKHOST" nbd --help)
    for o in -p -b -k -e -t -v -x -D --fork --pid-file -L -o -P -c -d -f -r -s -l -n \
             --cache --aio --discard --detect-zeroes -V -h; do
        grep -qe "$o" <<<"$h" || { echo "missing $o"; exit 1; }
    done'
