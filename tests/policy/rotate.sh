#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Snapshot rotation on real qcow2 images, checked with qemu-img: 100
# nightly rotations of a two-disk group (the retained set written out by
# hand, qemu-img check clean, each kept snapshot holding its night's
# data), foreign snapshots surviving, dry runs changing nothing, SIGKILL
# between create and delete (and at random moments) followed by a run
# that converges, the rotation lock, an image held by qemu-io, state
# stored with the snapshot, the example command and its --check.
#
#   rotate.sh [KILLS]   (random SIGKILLs, default 10, at most 140)
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io flock
KILLS=${1:-10}
[ "$KILLS" -le 140 ] || KILLS=140   # the later sections run on nights 1000+
plan 44

RUN=$SOURCE_ROOT/tests/policy/run-rotation.lua
EX=$SOURCE_ROOT/examples/nightly-rotate.lua
A=$T/a.qcow2 B=$T/b.qcow2
NIGHT=86400 START=1735698600        # 2025-01-01 02:30 UTC

qemu-img create -q -f qcow2 "$A" 1M
qemu-img create -q -f qcow2 "$B" 1M
qemu-img snapshot -c manual "$A"
qemu-img snapshot -c nightly-manual "$B"

# tags IMG: the snapshot names, one per line, sorted.
tags() { qemu-img snapshot -U -l "$1" | awk 'NR > 2 { print $2 }' | sort; }
# clean IMG...: qemu-img check reports nothing at all.
clean() { local i; for i; do qemu-img check -q "$i" || return 1; done; }
# no_corruption IMG: leaks (3) are fine after a SIGKILL, corruption (2) not.
no_corruption() { qemu-img check -q "$1" >/dev/null 2>&1; local r=$?; [ $r = 0 ] || [ $r = 3 ]; }
night() { echo $((START + ($1 - 1) * NIGHT)); }
expect() {  # expect DAY... : the own names of 02:30 UTC nights, plus foreign
    local d; for d; do echo "nightly-${d}T02:30:00+0000"; done
}
same() {    # same DESC WANT GOT
    if [ "$2" = "$3" ]; then ok "$1"; else
        not_ok "$1"; diag "want:"; diag "$2"; diag "got:"; diag "$3"; fi
}

# --- 100 nights ---
check "100 nightly rotations of a two-image group (data written each night)" \
    "$BLKHOST" run "$RUN" --nights 100 --write --quiet "$A" "$B"
want=$( (expect 2025-04-10 2025-04-09 2025-04-08 2025-04-07 2025-04-06 \
    2025-04-05 2025-04-04 2025-03-31 2025-03-30 2025-03-23 2025-02-28; echo manual) | sort)
same "after 100 nights, daily=7 weekly=4 monthly=3: a.qcow2 holds the hand-written set" "$want" "$(tags "$A")"
same "b.qcow2 holds the same set (its foreign one apart)" \
    "$(echo "$want" | sed 's/^manual$/nightly-manual/' | sort)" "$(tags "$B")"
check "qemu-img check is clean on both images after 100 rotations" clean "$A" "$B"
if tags "$A" | grep -qx manual && tags "$B" | grep -qx nightly-manual; then
    ok "foreign snapshots (qemu-img snapshot -c manual, nightly-manual) survive 100 rotations"
else not_ok "foreign snapshots (qemu-img snapshot -c manual, nightly-manual) survive 100 rotations"; fi
stamp() {  # stamp IMG NAME: first 8 bytes of the snapshot, read by qemu-img
    qemu-img convert -f qcow2 -O raw -l "snapshot.name=$2" "$1" "$T/snap.raw" &&
        head -c 8 "$T/snap.raw" | od -An -tx1 | tr -d ' \n'
}
bad=""
for d in 2025-02-28 2025-03-23 2025-03-31 2025-04-10; do
    t=$(date -u -d "${d}T02:30:00Z" +%s)
    for img in "$A" "$B"; do
        [ "$(stamp "$img" "nightly-${d}T02:30:00+0000")" = "$(printf %016x "$t")" ] || bad="$bad $img:$d"
    done
done
if [ -z "$bad" ]; then ok "kept snapshots hold their own night's data (read back with qemu-img convert -l)"
else not_ok "kept snapshots hold their own night's data"; diag "wrong:$bad"; fi

# A control pair rotated on the same nights without any crash.
C=$T/c.qcow2 D=$T/d.qcow2
cp "$A" "$C"; cp "$B" "$D"

# --- dry run ---
sum_before=$(md5sum "$A" "$B" | awk '{print $1}')
out=$("$BLKHOST" run "$RUN" --start "$(night 101)" --dry-run "$A" "$B" 2>&1)
if [ "$sum_before" = "$(md5sum "$A" "$B" | awk '{print $1}')" ]; then
    ok "a dry run leaves both images byte for byte unchanged"
else not_ok "a dry run leaves both images byte for byte unchanged"; fi
if echo "$out" | grep -q '^create nightly-2025-04-11T02:30:00+0000 on ' &&
   echo "$out" | grep -q '^delete nightly-2025-04-04T02:30:00+0000  no rule keeps it$' &&
   echo "$out" | grep -q '^dry run: nothing was changed$'; then
    ok "the dry run prints the plan: create, keep/delete with their rules"
else not_ok "the dry run prints the plan"; diag "$out"; fi

# --- crash between create and delete ---
("$BLKHOST" run "$RUN" --start "$(night 101)" --kill after_create "$A" "$B"; exit $?) >/dev/null 2>&1
st=$?
if [ $st -ge 128 ] && tags "$A" | grep -q 'nightly-2025-04-11' && tags "$A" | grep -q 'nightly-2025-04-04'; then
    ok "SIGKILL after create: the new snapshot exists, nothing was deleted yet"
else not_ok "SIGKILL after create: the new snapshot exists, nothing was deleted yet"; diag "status $st"; fi
check "qemu-img check is clean after the SIGKILL" clean "$A" "$B"
check "the next night's rotation runs" "$BLKHOST" run "$RUN" --start "$(night 102)" --quiet "$A" "$B"
"$BLKHOST" run "$RUN" --start "$(night 101)" --nights 2 --quiet "$C" "$D"
same "after it, the crashed group holds what an uncrashed one holds (a.qcow2)" "$(tags "$C")" "$(tags "$A")"
same "... and b.qcow2" "$(tags "$D")" "$(tags "$B")"

# --- crash in the middle of the deletions ---
("$BLKHOST" run "$RUN" --start "$(night 103)" --kill after_delete "$A" "$B"; exit $?) >/dev/null 2>&1
check "qemu-img check is clean after a SIGKILL between two deletions" clean "$A" "$B"
"$BLKHOST" run "$RUN" --start "$(night 104)" --quiet "$A" "$B"
"$BLKHOST" run "$RUN" --start "$(night 103)" --nights 2 --quiet "$C" "$D"
same "the run after a SIGKILL between deletions converges" "$(tags "$C")" "$(tags "$A")"

# --- a half-taken group (the snapshot made on one image only) ---
half=nightly-2025-04-15T02:30:00+0000
qemu-img snapshot -c "$half" "$A"
out=$("$BLKHOST" run "$RUN" --start "$(night 106)" "$A" "$B" 2>&1)
if echo "$out" | grep -q "^delete $half  left by an interrupted rotation (missing on $B)"; then
    ok "a snapshot on one image of the group only is deleted as left by an interrupted rotation"
else not_ok "a half-taken group is deleted as an interrupted rotation"; diag "$out"; fi
# The control never had night 105: its rotation is the one interrupted.
"$BLKHOST" run "$RUN" --start "$(night 106)" --quiet "$C" "$D"
same "... and the group converges to one that skipped that night" "$(tags "$C")" "$(tags "$A")"

# --- SIGKILL at random moments ---
corrupt=0 converged=0
n=107
for ((k = 0; k < KILLS; k++)); do
    "$BLKHOST" run "$RUN" --start "$(night $n)" --nights 5 --write --quiet "$A" "$B" >/dev/null 2>&1 &
    pid=$!
    sleep "0.0$((RANDOM % 10))"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    if ! no_corruption "$A" || ! no_corruption "$B"; then
        corrupt=$((corrupt + 1))
        diag "$(qemu-img check "$A" 2>&1 | grep ERROR; qemu-img check "$B" 2>&1 | grep ERROR)"
        qemu-img check -q -r all "$A" >/dev/null 2>&1; qemu-img check -q -r all "$B" >/dev/null 2>&1
    fi
    n=$((n + 5))
    "$BLKHOST" run "$RUN" --start "$(night $n)" --quiet "$A" "$B" >/dev/null 2>&1
    # Converged: a dry run at the same moment has nothing to delete.
    out=$("$BLKHOST" run "$RUN" --start "$(night $n)" --dry-run "$A" "$B" 2>&1)
    if echo "$out" | grep -q '^exists ' && ! echo "$out" | grep -q '^delete '; then
        converged=$((converged + 1))
    else diag "$out"; fi
    n=$((n + 1))
done
if [ $corrupt = 0 ]; then ok "$KILLS SIGKILLs at random moments: qemu-img check never reports corruption"
else not_ok "$KILLS SIGKILLs at random moments: $corrupt left corruption"; fi
if [ $converged = "$KILLS" ]; then ok "after each, the next rotation converges (a dry run then has nothing to delete)"
else not_ok "after each SIGKILL the next rotation converges ($converged of $KILLS)"; fi
qemu-img check -q -r leaks "$A" >/dev/null 2>&1; qemu-img check -q -r leaks "$B" >/dev/null 2>&1

# --- concurrency ---
wait_for() {  # wait_for PATTERN FILE PID (as tests/drivers/locking.sh)
    local i
    for ((i = 0; i < 1200; i++)); do
        grep -q -- "$1" "$2" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { grep -q -- "$1" "$2" 2>/dev/null; return; }
        sleep 0.05
    done
    return 1
}
mkfifo "$T/go"
"$BLKHOST" run "$RUN" --start "$(night 1000)" --wait "$T/go" "$A" "$B" >"$T/first" 2>&1 &
first=$!
wait_for '^locked' "$T/first" $first
before=$(tags "$A"; tags "$B")
check_fails "a second rotation of the same images is refused by the lock, naming the first's pid" \
    "another rotation of .*a\\.qcow2 is running \\(process $first\\), holding .*a\\.qcow2\\.rotate-lock; nothing was changed" \
    "$BLKHOST" run "$EX" --keep-daily 7 --now "$(night 1000)" "$A" "$B"
check_fails "a rotation of an overlapping group (b.qcow2 alone) is refused too" \
    "another rotation of .*b\\.qcow2 is running" \
    "$BLKHOST" run "$EX" --keep-daily 7 --now "$(night 1000)" "$B"
same "the refused rotations changed nothing" "$before" "$(tags "$A"; tags "$B")"
echo go >"$T/go"
if wait $first && grep -q '^create nightly-2027-09-27' "$T/first"; then
    ok "the first rotation completes once released"
else not_ok "the first rotation completes once released"; diag "$(cat "$T/first")"; fi
exec 5>>"$T/.a.qcow2.rotate-lock"
flock -n 5
check_fails "a lock held by flock(1) refuses the rotation too" \
    "another rotation of .*a\\.qcow2 is running" \
    "$BLKHOST" run "$EX" --keep-daily 7 "$A"
exec 5>&-

# --- an image QEMU holds ---
mkfifo "$T/qin"
qemu-io -f qcow2 "$A" <"$T/qin" >"$T/qout" 2>&1 &
QPID=$!
exec 4>"$T/qin"
at_exit 'exec 4>&-'
echo "read 0 512" >&4
wait_for 'read 512/512 bytes' "$T/qout" $QPID
before=$(tags "$A"; tags "$B")
check_fails "an image held by qemu-io is refused: in use by qemu-io (pid N); nothing was changed" \
    "^blkhost nightly-rotate: $A is in use by qemu-io \\(pid $QPID\\); nothing was changed\$" \
    "$BLKHOST" run "$EX" --keep-daily 7 --now "$(night 1001)" "$B" "$A"
same "the refused rotation changed neither image (b.qcow2 came first)" "$before" "$(tags "$A"; tags "$B")"
out=$("$BLKHOST" run "$EX" --check --now "$(night 1000)" "$A" 2>&1); st=$?
if [ $st = 0 ] && echo "$out" | grep -q '^OK - newest snapshot nightly-2027-09-27T02:30:00+0000 is 0s old'; then
    ok "--check reads an image qemu-io holds (no lock taken): OK"
else not_ok "--check reads an image qemu-io holds"; diag "status $st: $out"; fi
echo quit >&4; exec 4>&-; wait $QPID 2>/dev/null

# --- the example command ---
out=$("$BLKHOST" run "$EX" --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prefix nightly- \
      --now "$(night 1001)" "$A" "$B" 2>&1); st=$?
if [ $st = 0 ] && echo "$out" | grep -q "^create nightly-2027-09-28T02:30:00+0000 on $A, $B\$" &&
   echo "$out" | grep -q '^keep   nightly-2027-09-28T02:30:00+0000  newest, daily 2027-09-28, weekly 2027-W39, monthly 2027-09$' &&
   echo "$out" | grep -q '^ignore manual '; then
    ok "nightly-rotate.lua --keep-daily 7 --keep-weekly 4 --keep-monthly 12: create line, rules per snapshot"
else not_ok "nightly-rotate.lua prints the plan"; diag "status $st: $out"; fi
chk() { "$BLKHOST" run "$EX" --check --now "$1" "$A" "$B"; }
out=$(chk $(( $(night 1001) + 3600 ))); st=$?
[ $st = 0 ] && echo "$out" | grep -q '^OK - newest snapshot nightly-2027-09-28T02:30:00+0000 is 1h old .*|age=3600s;93600;180000;0' \
    && ok "--check 1h after the rotation: OK, exit 0, perfdata" || { not_ok "--check 1h after: OK"; diag "$st $out"; }
out=$(chk $(( $(night 1001) + 30 * 3600 ))); st=$?
[ $st = 1 ] && echo "$out" | grep -q '^WARNING - newest snapshot .* is 1d6h old' \
    && ok "--check 30h after: WARNING, exit 1" || { not_ok "--check 30h after: WARNING"; diag "$st $out"; }
out=$(chk $(( $(night 1001) + 60 * 3600 ))); st=$?
[ $st = 2 ] && echo "$out" | grep -q '^CRITICAL - ' \
    && ok "--check 60h after: CRITICAL, exit 2" || { not_ok "--check 60h after: CRITICAL"; diag "$st $out"; }
out=$("$BLKHOST" run "$EX" --check --prefix weekly- "$A"); st=$?
[ $st = 2 ] && echo "$out" | grep -q "^CRITICAL - no weekly- snapshot on $A" \
    && ok "--check with no snapshot of the prefix: CRITICAL" || { not_ok "--check, no snapshot: CRITICAL"; diag "$st $out"; }
out=$("$BLKHOST" run "$EX" --check "$T/missing.qcow2"); st=$?
[ $st = 3 ] && echo "$out" | grep -q '^UNKNOWN - cannot open' \
    && ok "--check of a missing image: UNKNOWN, exit 3" || { not_ok "--check missing image: UNKNOWN"; diag "$st $out"; }
out=$("$BLKHOST" run "$EX" --check --bogus "$A"); st=$?
[ $st = 3 ] && echo "$out" | grep -q "^UNKNOWN - unknown option '--bogus'" \
    && ok "--check with a bad option: UNKNOWN, exit 3" || { not_ok "--check bad option: UNKNOWN"; diag "$st $out"; }
check_fails "nightly-rotate.lua --keep-daily -1 refused" "keep\\.daily is -1" \
    "$BLKHOST" run "$EX" --keep-daily -1 "$A"
check_fails "nightly-rotate.lua --within '3 weeks-ish' refused" "within '3 weeks-ish' is not a duration" \
    "$BLKHOST" run "$EX" --within "3 weeks-ish" "$A"
check_fails "nightly-rotate.lua with no --keep-* refused as an empty policy" "empty policy" \
    "$BLKHOST" run "$EX" "$A"
check_fails "nightly-rotate.lua with no image: usage error" "no images given" \
    "$BLKHOST" run "$EX" --keep-daily 1
out=$("$BLKHOST" run "$EX" --help); st=$?
[ $st = 0 ] && echo "$out" | grep -q -- '--keep-weekly N' && ok "nightly-rotate.lua --help" || not_ok "nightly-rotate.lua --help"
out=$("$BLKHOST" run "$EX" --keep-last 1 --timezone Europe/Berlin --pin 'nightly-2027-09-27*' \
      --now "$(night 1002)" "$A" "$B" 2>&1); st=$?
if [ $st = 0 ] && echo "$out" | grep -q '^create nightly-2027-09-29T04:30:00+0200 ' &&
   echo "$out" | grep -q '^keep   nightly-2027-09-27T02:30:00+0000  pinned (nightly-2027-09-27\*)$' &&
   echo "$out" | grep -q '^delete nightly-2027-09-28T02:30:00+0000  no rule keeps it$'; then
    ok "--timezone Europe/Berlin names the snapshot in Berlin time; --pin keeps a match"
else not_ok "--timezone and --pin"; diag "$st $out"; fi

# --- state stored with the snapshot ---
E=$T/e.qcow2
qemu-img create -q -f qcow2 "$E" 1M
check "a rotation with --state job=backup runs" \
    "$BLKHOST" run "$EX" --keep-daily 3 --state job=backup --state 'where=/srv/x y' --now "$(night 1)" "$E"
size=$(qemu-img snapshot -l "$E" | awk '$2 ~ /^nightly-/ { print $3 }')
if [ -n "$size" ] && [ "$size" != 0 ]; then ok "the snapshot carries vmstate (VM SIZE $size $(qemu-img snapshot -l "$E" | awk '$2 ~ /^nightly-/ { print $4 }'))"
else not_ok "the snapshot carries vmstate"; diag "$(qemu-img snapshot -l "$E")"; fi
cp "$E" "$T/e-copy.qcow2"
out=$("$BLKHOST" run - "$T/e-copy.qcow2" 2>&1 <<'EOF'
local bh = require "blkhost"
local rotate = require "blkhost.rotate"
local got
bh.vmstate.register { name = rotate.STATE_SECTION, version = rotate.STATE_VERSION,
  fields = rotate.STATE_FIELDS, get = function() return {} end,
  set = function(t) got = t end }
local img <close> = bh.open(arg[1])
print(bh.loadvm("nightly-2025-01-01T02:30:00+0000"))
print(got.prefix, got.name, got.taken, got.json)
EOF
)
want='true
nightly-	nightly-2025-01-01T02:30:00+0000	1735698600	{"job":"backup","where":"/srv/x y"}'
same "loadvm of a copy reads the state back: prefix, name, time, the table as JSON" "$want" "$out"
check "qemu-img check is clean on every image at the end" clean "$A" "$B" "$C" "$D" "$E"
