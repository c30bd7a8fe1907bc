#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The savevm stream against QEMU itself (qemu-system-x86_64 -machine none):
# QEMU's migration output is read by blkhost's savevm reader, and streams
# written by bh_savevm_write_state() are loaded by an incoming QEMU, whose
# run state then comes from our "globalstate" section, without a warning
# (the JSON description trailer after EOF is what QEMU expects there).
# Args: vmstate-qemu helper, qmp-migrate.py.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-system-x86_64 /usr/bin/python3
HELPER=$1 QMP=$2
plan 10

out=$(/usr/bin/python3 "$QMP" save "$T/qemu.mig" 2>&1)
if [[ $out == *migration=completed* && -s $T/qemu.mig ]]; then
    ok "qemu: migrate of a stopped -machine none VM to a file"
else
    not_ok "qemu: migrate to a file"; diag "$out"
fi
hdr=$(od -An -tx1 -N8 "$T/qemu.mig" | tr -d ' \n')
if [[ $hdr == 5145564d00000003 ]]; then
    ok "qemu: its stream starts with 51 45 56 4d 00 00 00 03, as ours"
else
    not_ok "qemu: header is $hdr"
fi

out=$("$HELPER" read "$T/qemu.mig" 2>&1)
if [[ $out == *"runstate=prelaunch size=10 "* ]]; then
    ok "read: QEMU's timer and globalstate FULL sections load (runstate prelaunch)"
else
    not_ok "read: QEMU's FULL sections"; diag "$out"
fi
if [[ $out == *"after=06"* ]]; then
    ok "read: the reader stops exactly at EOF (QEMU's VMDESCRIPTION 0x06 follows)"
else
    not_ok "read: stop at EOF"; diag "$out"
fi
check_fails "read: QEMU's whole stream refused at its CONFIGURATION section" \
    'section type 7 \(CONFIGURATION\) at offset 8 is not supported' \
    "$HELPER" read-raw "$T/qemu.mig"

check "write: blkhost writes a stream with runstate running" \
    "$HELPER" write "$T/ours-running.mig" running
out=$(/usr/bin/python3 "$QMP" load "$T/ours-running.mig" 2>&1)
if [[ $out == *"migration=completed runstate=running"* ]]; then
    ok "write: QEMU loads it and runs"
else
    not_ok "write: QEMU loads our stream (running)"; diag "$out"
fi
# Without the JSON trailer QEMU warns "Expected vmdescription section".
if [[ $out == *"migration=completed"* && $out != *"stderr:"* ]]; then
    ok "write: QEMU loads it without a word on stderr (it found our VMDESCRIPTION trailer after EOF)"
else
    not_ok "write: QEMU warns about our stream"; diag "$out"
fi
"$HELPER" write "$T/ours-paused.mig" paused
out=$(/usr/bin/python3 "$QMP" load "$T/ours-paused.mig" 2>&1)
if [[ $out == *"migration=completed runstate=paused"* ]]; then
    ok "write: with runstate paused QEMU stays paused (it read our globalstate)"
else
    not_ok "write: QEMU loads our stream (paused)"; diag "$out"
fi
"$HELPER" write "$T/ours-broken.mig" running break-footer
out=$(/usr/bin/python3 "$QMP" load "$T/ours-broken.mig" 2>&1)
if [[ $out != *"migration=completed"* && $out == *"ooter"* ]]; then
    ok "write: the same stream with a broken footer is refused by QEMU"
else
    not_ok "write: QEMU should refuse a broken footer"; diag "$out"
fi
exit $((tap_failed > 0))
