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
