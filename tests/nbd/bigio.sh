#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Requests up to 64 MiB (advertised in NBD_INFO_BLOCK_SIZE) are served;
# one byte more is refused with EINVAL.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
plan 5
T=$(mktemp -d); at_exit "rm -rf $T"
truncate -s 128M "$T/disk.img"
start_server a listen="unix:$T/s.sock" persistent=1 export="$T/disk.img" ||
    { not_ok "server starts"; exit 1; }
py_tap "$SOURCE_ROOT/tests/nbd/bigio.py" "$T/s.sock"
stop_server a
