#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# systemd/blkhost-nbd@.service and .socket: configured from the install
# prefix, accepted by `systemd-analyze verify` (pointed at the build
# tree), and the service's command line, run the way systemd runs it
# (systemd-socket-activate hands it the socket), serves the image and
# answers on its control socket.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img
plan 5

UNITS=$BUILD_ROOT/systemd
svc=$UNITS/blkhost-nbd@.service
if grep -q "^ExecStart=/.*/bin/blkhost run /.*/share/blkhost/examples/export.lua --systemd --control /run/blkhost/%i.ctl" "$svc" \
   && ! grep -q "@[A-Z]*@" "$svc" "$UNITS/blkhost-nbd@.socket"; then
    ok "the units are configured: install paths in ExecStart, no @VAR@ left"
else not_ok "the units are configured: install paths in ExecStart, no @VAR@ left"; diag "$(grep -n '@\|ExecStart' "$svc")"; fi

IMG=$T/vm1.qcow2
qemu-img create -q -f qcow2 "$IMG" 16M
mkdir -p "$T/etc" "$T/units"
printf 'IMAGE=%s\nOPTIONS=--name vm1\n' "$IMG" >"$T/etc/vm1.conf"
# The installed paths, pointed at the build and source trees.
local_paths() {
    sed -e "s|^ExecStart=[^ ]*/bin/blkhost |ExecStart=$BLKHOST |" \
        -e "s| [^ ]*/share/blkhost/examples/| $SOURCE_ROOT/examples/|" \
        -e "s|^EnvironmentFile=.*|EnvironmentFile=$T/etc/%i.conf|" \
        -e "s|/run/blkhost/|$T/run/|g"
}
local_paths <"$svc" >"$T/units/blkhost-nbd@vm1.service"
local_paths <"$UNITS/blkhost-nbd@.socket" >"$T/units/blkhost-nbd@vm1.socket"

if command -v systemd-analyze >/dev/null 2>&1; then
    out=$(cd "$T/units" && systemd-analyze verify blkhost-nbd@vm1.service blkhost-nbd@vm1.socket 2>&1)
    # Only complaints about these two units count (the host's own units
    # may be odd in a container).
    if echo "$out" | grep -q "blkhost-nbd@"; then not_ok "systemd-analyze verify accepts blkhost-nbd@vm1.service and .socket"; diag "$out"
    else ok "systemd-analyze verify accepts blkhost-nbd@vm1.service and .socket"; fi
else
    skip "systemd-analyze verify: not installed"
fi

# The ExecStart line as systemd would run it, %i = vm1, under
# systemd-socket-activate (LISTEN_FDS) on the socket unit's path.
if command -v systemd-socket-activate >/dev/null 2>&1; then
    mkdir -p "$T/run"
    cmd=$(sed -n 's/^ExecStart=//p' "$T/units/blkhost-nbd@vm1.service" | sed -e 's/%i/vm1/g' \
          -e 's/\$OPTIONS/--name vm1/' -e "s|\${IMAGE}|$IMG|")
    listen=$(sed -n 's/^ListenStream=//p' "$T/units/blkhost-nbd@vm1.socket" | sed 's/%i/vm1/')
    XDG_RUNTIME_DIR=$T/run systemd-socket-activate -l "$listen" $cmd >"$T/svc.log" 2>&1 &
    SVC=$!
    at_exit "kill $SVC 2>/dev/null"
    for i in $(seq 100); do [ -S "$listen" ] && break; sleep 0.05; done
    out=$(nbdinfo --size "nbd+unix:///vm1?socket=$listen" 2>&1)
    if [ "$out" = 16777216 ]; then ok "socket-activated, the service's command serves export vm1 (16 MiB)"
    else not_ok "socket-activated, the service's command serves export vm1 (16 MiB)"; diag "$out"; diag "$(cat "$T/svc.log")"; fi
    check "its control socket answers: blkhost ctl snapshot-create" \
        "$BLKHOST" ctl "$T/run/vm1.ctl" snapshot-create name=via-unit
    "$BLKHOST" ctl "$T/run/vm1.ctl" quit >/dev/null 2>&1
    wait $SVC
    if qemu-img snapshot -l "$IMG" | grep -q " via-unit "; then ok "after quit the snapshot is in the image"
    else not_ok "after quit the snapshot is in the image"; fi
else
    skip "socket activation: systemd-socket-activate is not installed"
    skip "control socket of the socket-activated service"
    skip "snapshot through the unit's control socket"
fi
