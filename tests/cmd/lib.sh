# SPDX-License-Identifier: BSD-3-Clause
# Shared by the `blkhost nbd` tests: start blkhost nbd and qemu-nbd in
# the background with --fork (both return once they serve, so nothing
# here waits on timing), stop them through their pid files, and read
# what a client sees.  Source after tests/tap.sh.
export PATH="/usr/bin:$PATH"
# Keep -s overlays inside the scratch dir, so a leftover one is noticed.
export TMPDIR="$T"

# bh NAME ARGS...: blkhost nbd --fork on $T/NAME.sock, pid in $T/NAME.pid,
# stderr in $T/NAME.err.  Returns blkhost's status.
bh() {
    local n=$1; shift
    "$BLKHOST" nbd --fork --pid-file "$T/$n.pid" -k "$T/$n.sock" "$@" 2>"$T/$n.err"
    local rc=$?
    [ -s "$T/$n.pid" ] && at_exit "kill $(cat "$T/$n.pid") 2>/dev/null"
    return $rc
}
# qn NAME ARGS...: the same with qemu-nbd.
qn() {
    local n=$1; shift
    qemu-nbd --fork --pid-file "$T/$n.pid" -k "$T/$n.sock" "$@" 2>"$T/$n.err"
    local rc=$?
    [ -s "$T/$n.pid" ] && at_exit "kill $(cat "$T/$n.pid") 2>/dev/null"
    return $rc
}
# stop NAME [SIGNAL]: signal the server (SIGTERM) and wait until it is gone.
stop() {
    local p
    p=$(cat "$T/$1.pid" 2>/dev/null) || return 0
    kill -"${2:-TERM}" "$p" 2>/dev/null
    wait_gone "$p"
}
# gone PID: the process has exited.  A daemon is nobody's child here, and
# it stays a zombie until whoever adopted it reaps it: that counts as gone.
gone() {
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$st" = Z ] || [ "$st" = X ]
}
# wait_gone PID: wait up to 20 s for it.
wait_gone() {
    local i
    for i in $(seq 1 400); do
        gone "$1" && return 0
        sleep 0.05
    done
    return 1
}
uri() { echo "nbd+unix:///${2:-}?socket=$T/$1.sock"; }

# The client-visible facts nbdinfo reports, one key=value per line.
INFO_KEYS="export-name description export-size is_read_only can_flush can_fua
can_zero can_fast_zero can_df can_cache can_multi_conn is_rotational
block_size_minimum"
# Not compared, deliberate differences of blkhost's server:
#   can_trim              with discard=ignore qemu-nbd offers trim and drops
#                         it, blkhost does not offer it (compared with unmap)
#   block_size_preferred  blkhost prefers the qcow2 cluster size, qemu-nbd 4096
#   block_size_maximum    blkhost takes 64 MiB requests, qemu-nbd 32 MiB
#   block_size_minimum    with O_DIRECT blkhost asks for 512 (node.h: the
#                         smallest useful request), qemu-nbd says 1
#                         (COMPARE_IGNORE leaves it out for -n)
# Clients get a time limit far above what they need, so that a hang shows
# up as a failed check naming the client instead of a suite timeout.
info() {
    timeout 60 nbdinfo --json "$1" | /usr/bin/python3 -c '
import json, sys
keys = sys.argv[1].split()
e = json.load(sys.stdin)["exports"][0]
for k in keys:
    if k not in sys.argv[2].split():
        print("%s=%s" % (k, e.get(k)))' "$INFO_KEYS $2" "${COMPARE_IGNORE:-}"
}
# bytes URI: checksum of every byte the export serves.
bytes() {
    if timeout 60 nbdcopy "$1" - >"$T/bytes.out"; then
        md5sum <"$T/bytes.out" | cut -d' ' -f1
    else
        echo "nbdcopy-failed($?)"
    fi
}

# same DESC URI_A URI_B [EXTRA_KEYS]: nbdinfo facts and bytes agree.
same() {
    local desc=$1 a=$2 b=$3 extra=${4:-}
    local ia ib
    ia=$(info "$a" "$extra" 2>&1); ib=$(info "$b" "$extra" 2>&1)
    if [ "$ia" != "$ib" ]; then
        not_ok "$desc: nbdinfo agrees"; diag "$(diff <(echo "$ia") <(echo "$ib"))"
    else
        ok "$desc: nbdinfo agrees"
    fi
    local ba bb
    ba=$(bytes "$a"); bb=$(bytes "$b")
    if [ -n "$ba" ] && [ "$ba" = "$bb" ]; then
        ok "$desc: same bytes"
    else
        not_ok "$desc: same bytes"; diag "blkhost $ba, qemu-nbd $bb"
    fi
}

# compare DESC IMAGE ARGS...: serve IMAGE with ARGS from both servers
# (each on its own copy, so neither takes the other's lock) and compare.
compare() {
    local desc=$1 img=$2; shift 2
    cp --sparse=always "$img" "$T/b.img"; cp --sparse=always "$img" "$T/q.img"
    if ! bh b -t "$@" "$T/b.img"; then
        not_ok "$desc: blkhost nbd starts"; diag "$(cat "$T/b.err")"; return
    fi
    if ! qn q -t "$@" "$T/q.img"; then
        not_ok "$desc: qemu-nbd starts"; diag "$(cat "$T/q.err")"; stop b; return
    fi
    local name=""
    local i
    for ((i = 1; i <= $#; i++)); do
        case "${!i}" in
            -x) j=$((i + 1)); name=${!j} ;;
            --export-name=*) name=${!i#--export-name=} ;;
        esac
    done
    same "$desc" "$(uri b "$name")" "$(uri q "$name")" "$COMPARE_EXTRA"
    # qemu-nbd takes about 2 s to leave after SIGTERM; nothing of it is
    # checked here, so it gets SIGKILL.
    stop b; stop q KILL
}
COMPARE_EXTRA=""
