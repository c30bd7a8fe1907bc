#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# NBD error codes and request handling, checked with libnbd (nbdsh's
# Python module) with client-side checks off.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip_all "python3-libnbd is not installed"

truncate -s 16M "$T/rw.img"
truncate -s 16M "$T/ro.img"
start_server srv listen="unix:$T/sock" persistent=1 \
    export="$T/rw.img,name=rw" export="$T/ro.img,name=ro,readonly" ||
    { plan 1; not_ok "server starts"; exit 1; }

out=$(/usr/bin/python3 "$SOURCE_ROOT/tests/nbd/errors.py" "$T/sock" 2>&1)
n=$(echo "$out" | grep -cE '^(PASS|FAIL) ')
plan $((n + 1))
while IFS= read -r line; do
    case $line in
        "PASS "*) ok "${line#PASS }" ;;
        "FAIL "*) not_ok "${line#FAIL }" ;;
        *) diag "$line" ;;
    esac
done <<< "$out"
if echo "$out" | grep -q Traceback; then
    not_ok "errors.py ran to the end"
else
    ok "errors.py ran to the end"
fi
