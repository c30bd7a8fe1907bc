# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd -c/-d` inside the VM (run by nbd-connect-vm.sh through
# tests/vm/vm-run.sh): prints TAP lines without a plan.  $T is the shared
# work dir holding the images the host prepared.
echo "# guest start"
W=$T
export PATH=/usr/sbin:/sbin:$PATH
echo 1 > /proc/sys/kernel/printk
n=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; }
t() { local d=$1; shift; if "$@" >/tmp/out 2>&1; then ok "$d"; else not_ok "$d"; sed 's/^/# /' /tmp/out; fi; }
size() { echo $(( $(cat /sys/block/$1/size) * 512 )); }
B=$BLKHOST

out=$("$B" nbd -c /dev/nbd0 --pid-file "$W/c0.pid" -f qcow2 "$W/disk.qcow2" 2>&1); rc=$?
t "-c: returns 0 once /dev/nbd0 is live" test $rc = 0 -a "$(size nbd0)" = 16777216
t "-c: /dev/nbd0 reads the qcow2 image's data" bash -c "head -c 4096 /dev/nbd0 | tr -d a | wc -c | grep -qx 0"
t "-c: --pid-file names the background server" kill -0 "$(cat "$W/c0.pid")"
printf 'written through nbd0' | dd of=/dev/nbd0 bs=4096 seek=100 conv=sync,fsync status=none
out=$("$B" nbd -c /dev/nbd1 -f qcow2 "$W/disk.qcow2" 2>&1); rc=$?
t "-c: a second writer of the same image fails in the parent, rc 1" \
    bash -c "test $rc = 1 && grep -q locked <<<'$out' && test \$(cat /sys/block/nbd1/size) = 0"
out=$("$B" nbd -c /dev/nbd0 -r -f raw "$W/p.raw" 2>&1); rc=$?
t "-c: a device already in use is refused, rc 1" test $rc = 1 -a -n "$out"
pid=$(cat "$W/c0.pid")
out=$("$B" nbd -d /dev/nbd0 2>&1); rc=$?
t "-d: prints '/dev/nbd0 disconnected' and exits 0" test $rc = 0 -a "$out" = "/dev/nbd0 disconnected"
for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
t "-d: the -c server exits and its pid file is removed" bash -c "! kill -0 $pid 2>/dev/null && test ! -e '$W/c0.pid'"
t "-d: /dev/nbd0 has size 0 again" test "$(size nbd0)" = 0

"$B" nbd -c /dev/nbd2 -P 1 -r -f raw "$W/p.raw" >/tmp/out 2>&1
t "-c -P 1 -r: the partition, read-only" bash -c "test \$(( \$(cat /sys/block/nbd2/size) * 512 )) = 2097152 && test \$(cat /sys/block/nbd2/ro) = 1"
"$B" nbd -d /dev/nbd2 >/dev/null 2>&1

before=$(md5sum <"$W/p.raw")
"$B" nbd -c /dev/nbd3 -s -f raw "$W/p.raw" >/tmp/out 2>&1
printf 'overlay' | dd of=/dev/nbd3 bs=512 seek=8 conv=sync,fsync status=none
t "-c -s: writes are read back" bash -c "dd if=/dev/nbd3 bs=512 skip=8 count=1 status=none | grep -q overlay"
"$B" nbd -d /dev/nbd3 >/dev/null 2>&1
sleep 0.5
t "-c -s: the image is unchanged after -d" test "$(md5sum <"$W/p.raw")" = "$before"

"$B" nbd -c /dev/nbd4 -v -r -f raw "$W/p.raw" >/tmp/v.out 2>&1 &
vpid=$!
for i in $(seq 1 100); do [ "$(cat /sys/block/nbd4/size)" != 0 ] && break; sleep 0.1; done
t "-c -v: stays in the foreground and reports the connection" bash -c "kill -0 $vpid && grep -q 'connected' /tmp/v.out"
"$B" nbd -d /dev/nbd4 >/dev/null 2>&1
wait $vpid; rc=$?
t "-c -v: exits 0 after -d" test $rc = 0
echo "# guest done"
