# SPDX-License-Identifier: BSD-3-Clause
# Shared helpers of the snapshot tests (sourced after tests/tap.sh).
need qemu-img qemu-io
B=$BLKHOST

# qclean DESC IMG: qemu-img check reports no error and no leak.
qclean() {
    local out rc
    out=$(qemu-img check "$2" 2>&1); rc=$?
    if [ $rc -eq 0 ]; then ok "$1"; else not_ok "$1 (qemu-img check exit $rc)"; diag "$out"; fi
}
# lua SCRIPT...: run a Lua snippet with bh loaded; arguments in arg.
blua() { local s=$1; shift; printf 'local bh = require "blkhost"\n%s\n' "$s" | "$B" run - "$@" 2>&1 | tr '\t' ' '; return ${PIPESTATUS[1]}; }
# names IMG: the snapshot ids and names qemu-img lists, one "id name" a line.
names() { qemu-img snapshot -l "$1" | awk 'NR>2 {print $1, $2}'; }
