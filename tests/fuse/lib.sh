# SPDX-License-Identifier: BSD-3-Clause
# Shared by the fuse tests: start `blkhost fuse` or qemu-storage-daemon's
# FUSE export in the background, stop them, ask whether a path is
# mounted.  Source after tests/tap.sh.
export PATH="/usr/bin:/usr/sbin:/sbin:$PATH"
FUSE_SO="$BUILD_ROOT/plugins/fuse/fuse.so"
SEEK_PY="$SOURCE_ROOT/tests/fuse/seek.py"

# is_mounted PATH: PATH is a mount point now (/proc/self/mountinfo).
is_mounted() {
    local p
    p=$(realpath -- "$1") || return 1
    awk -v p="$p" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# wait_gone PID (from the nbd tests' helpers): up to 10 s for it to exit.
source "$SOURCE_ROOT/tests/nbd/lib.sh"

# unmount_dead PATH: a mount left on PATH by a server that did not
# unmount (killed) is detached, so that the scratch directory can go.
unmount_dead() {
    is_mounted "$1" 2>/dev/null || return 0
    umount -l "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null
}

# start_fuse NAME ARGS...: `blkhost fuse --fork ARGS`, which returns once
# mounted.  Its output goes to $T/NAME.log, its pid to NAME_pid.
start_fuse() {
    local name=$1; shift
    if ! "$BLKHOST" fuse --fork --pid-file="$T/$name.pid" "$@" >"$T/$name.log" 2>&1; then
        diag "blkhost fuse $* failed:"; diag "$(cat "$T/$name.log")"
        return 1
    fi
    local pid; pid=$(cat "$T/$name.pid")
    eval "${name}_pid=$pid"
    at_exit "kill $pid 2>/dev/null; wait_gone $pid; unmount_dead '${*: -1}'"
}

# stop_pid PID [SIGNAL]: signal (TERM) and wait until it has exited.
stop_pid() {
    kill -"${2:-TERM}" "$1" 2>/dev/null
    wait_gone "$1"
}

# start_qsd NAME FMT IMAGE MOUNTPOINT [writable]: qemu-storage-daemon's
# FUSE export of IMAGE (format FMT) on MOUNTPOINT; pid in NAME_pid.
start_qsd() {
    local name=$1 fmt=$2 img=$3 mp=$4 w=${5:-off}
    local bd="driver=file,node-name=f,filename=$img"
    [ "$fmt" = raw ] || bd="driver=$fmt,node-name=q,file.driver=file,file.filename=$img"
    local node=f; [ "$fmt" = raw ] || node=q
    if ! qemu-storage-daemon --blockdev "$bd" \
            --export "type=fuse,id=e,node-name=$node,mountpoint=$mp,writable=$w" \
            --pidfile "$T/$name.pid" --daemonize >"$T/$name.log" 2>&1; then
        diag "qemu-storage-daemon failed:"; diag "$(cat "$T/$name.log")"
        return 1
    fi
    local pid; pid=$(cat "$T/$name.pid")
    eval "${name}_pid=$pid"
    at_exit "kill $pid 2>/dev/null; wait_gone $pid; unmount_dead '$mp'"
}

# fuse_need: skip the whole file, with the reason, where this machine
# cannot make a FUSE mount.
fuse_need() {
    [ -f "$FUSE_SO" ] || skip_all "the fuse plugin was not built (libfuse3-dev was missing at configure time)"
    [ -c /dev/fuse ] || skip_all "no /dev/fuse on this machine"
    if [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null; then
        skip_all "not root and no fusermount3: mounting is not permitted"
    fi
    truncate -s 1M "$T/probe.img" && : >"$T/probe.mnt"
    local out
    if ! out=$("$BLKHOST" fuse -f raw --fork --pid-file="$T/probe.pid" "$T/probe.img" "$T/probe.mnt" 2>&1); then
        skip_all "mounting is not permitted here: $(echo "$out" | head -n 1)"
    fi
    stop_pid "$(cat "$T/probe.pid")"
}
