#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Partitions exported over NBD: examples/partition.lua serves the GPT
# partition labelled root read-only, and what nbdcopy, qemu-img convert
# and nbdinfo see equals dd with the matching skip and count (and an ext4
# made inside it passes e2fsck -fn); a writable export of a DOS logical
# partition takes writes at the partition's offset and nowhere else.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/partition/images.sh"
need sfdisk nbdinfo nbdcopy nbdsh qemu-img mkfs.ext4 e2fsck cmp
[ -f "$BUILD_ROOT/plugins/nbd-server/nbd-server.so" ] || skip_all "the nbd-server plugin is not built"
plan 14

EXAMPLE=$SOURCE_ROOT/examples/partition.lua
pids=()
stop_all() { local p; for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
at_exit stop_all

# start_server SOCK LOG CMD...: run CMD in the background until SOCK
# appears and CMD has printed its first line, which both servers here do
# once they listen (or until CMD exits); non-zero if it never listened.
start_server() {
    local sock=$1 log=$2; shift 2
    rm -f "$sock"
    "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 400); do
        [ -S "$sock" ] && grep -q . "$log" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
uri() { echo "nbd+unix:///?socket=$1"; }

make_gpt "$T/gpt.img"
read -r start size < <(sfdisk_sectors "$T/gpt.img" 2)
# An ext4 in 'root', made in a plain file and put in place with dd.
mkdir -p "$T/tree" && echo "root fs" > "$T/tree/hello.txt"
mkfs.ext4 -q -F -d "$T/tree" "$T/fs.img" $((size / 2)) >/dev/null 2>&1
dd if="$T/fs.img" of="$T/gpt.img" bs=512 seek="$start" conv=notrunc status=none
dd if="$T/gpt.img" of="$T/want.bin" bs=512 skip="$start" count="$size" status=none

S=$T/root.sock
if start_server "$S" "$T/example.log" "$BLKHOST" run "$EXAMPLE" "$T/gpt.img" --socket "$S"; then
    ok "examples/partition.lua starts serving the partition labelled root"
else
    not_ok "examples/partition.lua starts serving the partition labelled root"; diag "$(cat "$T/example.log")"
fi
check "example says which partition it serves" \
    grep -q "^exporting partition 2 'root' (linux, 16 MiB at offset $((start * 512)))" "$T/example.log"
got=$(nbdinfo --size "$(uri "$S")" 2>&1)
if [ "$got" = $((size * 512)) ]; then ok "nbdinfo: export size equals the partition's ($got)"
else not_ok "nbdinfo: export size equals the partition's"; diag "$got"; fi
check "nbdinfo: the export is read-only" bash -c "nbdinfo --json '$(uri "$S")' | grep -q '\"is_read_only\": true'"
rm -f "$T/copy.bin"
if out=$(nbdcopy "$(uri "$S")" "$T/copy.bin" 2>&1) && cmp -s "$T/copy.bin" "$T/want.bin"; then
    ok "nbdcopy of the export equals dd skip=$start count=$size"
else not_ok "nbdcopy of the export equals dd skip=$start count=$size"; diag "$out"; fi
rm -f "$T/qemu.bin"
if out=$(qemu-img convert -f raw -O raw "$(uri "$S")" "$T/qemu.bin" 2>&1) && cmp -s "$T/qemu.bin" "$T/want.bin"; then
    ok "qemu-img convert of the export equals dd"
else not_ok "qemu-img convert of the export equals dd"; diag "$out"; fi
check "e2fsck -fn on the nbdcopy of the export: ext4 intact" e2fsck -fn "$T/copy.bin"
check_fails "writing to the read-only export refused" "EPERM|read-only|Operation not permitted" \
    nbdsh -u "$(uri "$S")" -c 'h.pwrite(b"x" * 512, 0)'

make_dos "$T/dos.img"
check_fails "example on a DOS image refused: labels need GPT" "has an mbr partition table; labels need GPT" \
    "$BLKHOST" run "$EXAMPLE" "$T/dos.img" --socket "$T/x.sock"
check_fails "example with a missing label lists the partitions" "no partition with label 'nope'; the table has 1 \(gpt, efi-system, label 'efi'" \
    "$BLKHOST" run "$EXAMPLE" "$T/gpt.img" --label nope --socket "$T/x.sock"

# ---- a writable export of DOS logical partition 6 ----
read -r s6 n6 < <(sfdisk_sectors "$T/dos.img" 6)
cp "$T/dos.img" "$T/dos.orig"
W=$T/rw.sock
if start_server "$W" "$T/serve.log" "$BLKHOST" run "$PT_DIR/serve.lua" "$T/dos.img" "$W" 6 rw; then
    ok "a writable export of DOS logical partition 6 starts"
else
    not_ok "a writable export of DOS logical partition 6 starts"; diag "$(cat "$T/serve.log")"
fi
check "nbdsh writes the first and last 512 bytes of the export" \
    nbdsh -u "$(uri "$W")" -c "h.pwrite(b'A' * 512, 0); h.pwrite(b'Z' * 512, $((n6 * 512 - 512))); h.flush()"
check_fails "a write past the end of the export refused" "ENOSPC|No space|Invalid argument|EINVAL|out of range|beyond" \
    nbdsh -u "$(uri "$W")" -c "h.pwrite(b'!' * 512, $((n6 * 512)))"
first=$(dd if="$T/dos.img" bs=512 skip="$s6" count=1 status=none | tr -d A | wc -c)
last=$(dd if="$T/dos.img" bs=512 skip=$((s6 + n6 - 1)) count=1 status=none | tr -d Z | wc -c)
changed=$(cmp -l "$T/dos.img" "$T/dos.orig" | awk -v lo=$((s6 * 512)) -v hi=$(((s6 + n6) * 512)) \
    '$1 <= lo || $1 > hi { bad++ } END { print bad + 0 }')
if [ "$first" = 0 ] && [ "$last" = 0 ] && [ "$changed" = 0 ]; then
    ok "the writes landed at sectors $s6 and $((s6 + n6 - 1)) of the disk, nothing else changed"
else
    not_ok "the writes landed at the partition's sectors, nothing else changed"
    diag "first sector not A: $first bytes; last not Z: $last; bytes changed outside: $changed"
fi
