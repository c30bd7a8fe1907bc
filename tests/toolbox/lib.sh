# SPDX-License-Identifier: BSD-3-Clause
# Shared by the toolbox tests; source after tests/tap.sh.
#
# same_as_qemu CMD DESC ARGS...: `blkhost CMD ARGS` and `qemu-img CMD ARGS`
# (run in the current directory) print the same bytes on stdout and exit
# with the same status.  The TAP line names CMD, DESC, the status and the
# start of qemu-img's output (progress figures left out).
same_as_qemu() {
    local cmd=$1 desc=$2 brc qrc said; shift 2
    "$BLKHOST" "$cmd" "$@" >b.out 2>b.err; brc=$?
    qemu-img "$cmd" "$@" >q.out 2>q.err; qrc=$?
    said=$(tr '\r\n' '  ' <q.out | sed 's/ *(1*[0-9.]*\/100%) *//g' | head -c 60)
    [ "$cmd" = compare ] || said=""
    if [ $brc -eq $qrc ] && cmp -s b.out q.out; then
        ok "$cmd: $desc (as qemu-img $cmd, exit $qrc${said:+: $said})"
    else
        not_ok "$cmd: $desc (as qemu-img $cmd, exit $qrc)"
        diag "blkhost exit $brc, qemu-img exit $qrc"
        diff q.out b.out | head -20 | while read -r l; do diag "$l"; done
        diag "$(cat b.err q.err)"
    fi
}

# corrupt_l2 IMAGE INDEX: set bit 9 in the L2 entry INDEX of the first L2
# table of a qcow2 IMAGE, so that the cluster points at an unaligned host
# offset: reading or mapping that cluster fails, the rest still works.
corrupt_l2() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); i = int(sys.argv[2])
l1 = struct.unpack('>Q', f.read(48)[40:48])[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2 + i * 8); e = struct.unpack('>Q', f.read(8))[0]
f.seek(l2 + i * 8); f.write(struct.pack('>Q', e | 0x200))
PY
}

# Chain tests (rebase, commit): orig/ holds the images; fresh copies it to
# b/ (blkhost's) and q/ (qemu-img's), each command running in its own
# folder since backing names are relative to the image's folder.
fresh() { rm -rf b q; cp -a orig b; cp -a orig q; }

# chain_report CMD DESC QRC BAD: the TAP line of a chain test run beside
# qemu-img (BAD empty: it passed), with both commands' output if not.
chain_report() {
    if [ -z "$4" ]; then
        ok "$1: $2 (as qemu-img $1, exit $3)"
    else
        not_ok "$1: $2"; diag "$4"; diag "$(cat b.out b.err q.out q.err)"
    fi
}

# chain_refused CMD DESC PATTERN IMAGE ARGS...: `blkhost CMD ARGS IMAGE`
# in b/ fails with PATTERN (grep -E), `qemu-img CMD` in q/ fails too, and
# every file in b/ is byte-identical to orig/'s.
chain_refused() {
    local cmd=$1 desc=$2 pat=$3 img=$4 qrc out brc; shift 4
    fresh
    (cd q && qemu-img "$cmd" "$@" "$img" >/dev/null 2>&1); qrc=$?
    out=$(cd b && "$BLKHOST" "$cmd" "$@" "$img" 2>&1); brc=$?
    if [ $brc -ne 0 ] && [ $qrc -ne 0 ] && echo "$out" | grep -qE -- "$pat" &&
       diff -r orig b >/dev/null; then
        ok "$cmd: $desc (refused as by qemu-img; every image byte-identical)"
    else
        not_ok "$cmd: $desc"; diag "blkhost exit $brc, qemu-img exit $qrc"; diag "$out"
        diff -r orig b | while read -r l; do diag "$l"; done
    fi
}
