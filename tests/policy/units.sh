#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The shipped ways of running the rotation every night: the systemd units
# pass `systemd-analyze verify`, the timer fires at 02:30, and the
# command lines of the service (with its default policy) and of the cron
# line in docs/rotation.md run as written, pointed at a scratch image.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img
plan 6

UNITS=$SOURCE_ROOT/examples/systemd
DOC=$SOURCE_ROOT/docs/rotation.md
IMG=$T/vm1.qcow2
qemu-img create -q -f qcow2 "$IMG" 1M

# The installed paths, pointed at the build and source trees.
local_paths() {
    sed -e "s|/usr/local/bin/blkhost|$BLKHOST|g" \
        -e "s|/usr/local/share/blkhost/examples/|$SOURCE_ROOT/examples/|g" \
        -e "s|/var/lib/libvirt/images/vm1.qcow2|$IMG|g"
}

if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir "$T/units"
    local_paths <"$UNITS/blkhost-rotate.service" >"$T/units/blkhost-rotate.service"
    cp "$UNITS/blkhost-rotate.timer" "$T/units/"
    check "systemd-analyze verify accepts blkhost-rotate.service and .timer" \
        systemd-analyze verify "$T/units/blkhost-rotate.service" "$T/units/blkhost-rotate.timer"
    cal=$(sed -n 's/^OnCalendar=//p' "$UNITS/blkhost-rotate.timer")
    out=$(systemd-analyze calendar "$cal" 2>&1)
    if echo "$out" | grep -q 'Normalized form: \*-\*-\* 02:30:00'; then
        ok "the timer fires every day at 02:30"
    else not_ok "the timer fires every day at 02:30"; diag "$out"; fi
else
    skip "systemd-analyze is not installed"
    skip "systemd-analyze is not installed"
fi
grep -q '^Type=oneshot$' "$UNITS/blkhost-rotate.service" &&
    grep -q '^Persistent=true$' "$UNITS/blkhost-rotate.timer" &&
    grep -q '^RandomizedDelaySec=' "$UNITS/blkhost-rotate.timer" &&
    ok "service is oneshot; timer is Persistent with a RandomizedDelaySec" ||
    not_ok "service is oneshot; timer is Persistent with a RandomizedDelaySec"

# ExecStart with the unit's own Environment= defaults, split on spaces
# as systemd splits an unbraced $VAR.
policy=$(sed -n 's/^Environment="ROTATE_POLICY=\(.*\)"$/\1/p' "$UNITS/blkhost-rotate.service")
images=$(sed -n 's/^Environment="ROTATE_IMAGES=\(.*\)"$/\1/p' "$UNITS/blkhost-rotate.service" | local_paths)
exec_start=$(sed -n 's/^ExecStart=//p' "$UNITS/blkhost-rotate.service" | local_paths)
exec_start=${exec_start//\$ROTATE_POLICY/$policy}
exec_start=${exec_start//\$ROTATE_IMAGES/$images}
read -r -a cmd <<<"$exec_start"
out=$("${cmd[@]}" 2>&1); st=$?
if [ $st = 0 ] && echo "$out" | grep -q '^create nightly-' && qemu-img snapshot -l "$IMG" | grep -q nightly-; then
    ok "the service's ExecStart with its default policy rotates the image"
else not_ok "the service's ExecStart with its default policy rotates the image"; diag "${cmd[*]}: $out"; fi

cron=$(grep -m1 '^30 2 \* \* \* root ' "$DOC")
if [ -n "$cron" ]; then ok "docs/rotation.md has a cron line for 02:30"; else not_ok "docs/rotation.md has a cron line for 02:30"; fi
read -r -a cmd <<<"$(echo "$cron" | cut -d' ' -f7- | local_paths)"
out=$("${cmd[@]}" --dry-run 2>&1); st=$?
if [ $st = 0 ] && echo "$out" | grep -q '^dry run: nothing was changed$'; then
    ok "the cron line's command runs as written (checked with --dry-run)"
else not_ok "the cron line's command runs as written"; diag "${cmd[*]}: $out"; fi
