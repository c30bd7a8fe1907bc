# SPDX-License-Identifier: BSD-3-Clause
# The VM tests (vm-nbd-kernel, cmd-nbd-connect-vm) start together on a fresh
# build dir and both want the initramfs.  Four builders into one empty cache
# at once must each end with the same, complete archive: the lock in
# vm-run.sh serializes them.  No VM boots here.
source "$SOURCE_ROOT/tests/tap.sh"
run="$SOURCE_ROOT/tests/vm/vm-run.sh"
export VM_CACHE=$T/cache
probe=$(bash "$run" --initrd-only 2>&1) || {
    case $probe in *"cannot run"*) skip_all "${probe#vm-run: }";; esac
    plan 1; not_ok "initrd: a single build succeeds"; diag "$probe"; exit 1; }
rm -rf "$VM_CACHE"
plan 4
pids=()
for i in 1 2 3 4; do
    bash "$run" --initrd-only >"$T/out$i" 2>&1 & pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
[ $fails -eq 0 ] && ok "initrd: four concurrent builders into one fresh cache all succeed" \
    || { not_ok "initrd: four concurrent builders into one fresh cache all succeed"; diag "$(cat "$T"/out*)"; }
paths=$(sort -u "$T"/out*)
[ "$(echo "$paths" | wc -l)" -eq 1 ] && ok "initrd: every builder names the same archive" \
    || { not_ok "initrd: every builder names the same archive"; diag "$paths"; }
if gzip -t "$paths" 2>/dev/null && gzip -dc "$paths" | cpio -it --quiet 2>/dev/null | grep -qx init; then
    ok "initrd: the archive is a whole gzip'd cpio with /init"
else
    not_ok "initrd: the archive is a whole gzip'd cpio with /init"
fi
left=$(ls "$VM_CACHE" | grep -v -e '\.cpio\.gz$' -e '\.lock$' || true)
[ -z "$left" ] && ok "initrd: no temporary files left in the cache" \
    || { not_ok "initrd: no temporary files left in the cache"; diag "$left"; }
exit 0
