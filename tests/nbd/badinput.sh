#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad input at the protocol level (raw socket client), the server's log
# messages for it, and fd / memory use over many connect/disconnect cycles.
# NBD_CYCLES (default 1000) sets the number of cycles.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"

truncate -s 80M "$T/disk.img"
start_server srv listen="unix:$T/sock" persistent=1 export="$T/disk.img" ||
    { plan 1; not_ok "server starts"; exit 1; }

out=$(/usr/bin/python3 "$SOURCE_ROOT/tests/nbd/rawclient.py" "$T/sock" \
      "$srv_pid" "${NBD_CYCLES:-1000}" 2>&1)
n=$(echo "$out" | grep -cE '^(PASS|FAIL|SKIP) ')
logchecks=(
    "unknown handshake flags 0x81"
    "bad option magic 0x1122334455667788"
    "option 7 has length 2147483648, far over"
    "export 'no-such-export' with EXPORT_NAME, which does not exist"
    "bad request magic 0xdeadbeef"
    "went away in the middle of a 1048576 byte write payload"
)
plan $((n + 2 + ${#logchecks[@]}))
while IFS= read -r line; do
    case $line in
        "PASS "*) ok "${line#PASS }" ;;
        "FAIL "*) not_ok "${line#FAIL }" ;;
        "SKIP "*) skip "${line#SKIP }" ;;
        *) diag "$line" ;;
    esac
done <<< "$out"
if echo "$out" | grep -q Traceback; then not_ok "rawclient.py ran to the end"
else ok "rawclient.py ran to the end"; fi
for msg in "${logchecks[@]}"; do
    if grep -qF -- "$msg" "$T/srv.log"; then ok "server log names the problem: '$msg'"
    else not_ok "server log names the problem: '$msg'"; fi
done
if stop_server srv && [ ! -e "$T/sock" ]; then
    ok "server still ends cleanly on SIGTERM and removes its socket"
else
    not_ok "server still ends cleanly on SIGTERM and removes its socket"
    diag "$(tail -5 "$T/srv.log")"
fi
