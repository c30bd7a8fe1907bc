#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A rotation's progress (lua/blkhost/rotate.lua, spec.progress): each
# image's steps on stderr with qemu-img's "(NN.NN/100%)" figure when asked;
# by default only on a terminal (run under script(1)'s pty) once the run
# is past rotate.PROGRESS_AFTER seconds; never with progress = false; and
# the plan lines on stdout are the same with or without it.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img
plan 10

B=$BLKHOST
cd "$T" || exit 1
# rot.lua NOW PROGRESS IMAGE...: one rotation keeping the last snapshot,
# rotate.PROGRESS_AFTER from $AFTER (default 2).
cat > rot.lua <<'LUA'
local rotate = require "blkhost.rotate"
rotate.PROGRESS_AFTER = tonumber(os.getenv("AFTER") or "2")
local policy = require "blkhost.policy"
local want = ({ ["true"] = true, ["false"] = false, ["nil"] = nil })[arg[2]]
if arg[2] ~= "true" and arg[2] ~= "false" and arg[2] ~= "nil" then want = arg[2] end
local images = {}
for i = 3, #arg do images[#images + 1] = arg[i] end
policy.rotate(images, { prefix = "nightly-", keep = { last = 1 }, now = tonumber(arg[1]), progress = want,
                        dry_run = os.getenv("DRY") == "1" })
LUA
fresh() {
    rm -f a.qcow2 b.qcow2
    qemu-img create -q -f qcow2 a.qcow2 1M && qemu-img create -q -f qcow2 b.qcow2 1M
    "$B" run rot.lua 1000000 false a.qcow2 b.qcow2 >/dev/null
}

fresh
"$B" run rot.lua 1086400 true a.qcow2 b.qcow2 >with.out 2>with.err
want=("opening a.qcow2" "opening b.qcow2" "taking nightly-1970-01-13T13:46:40+0000 on a.qcow2, b.qcow2"
      "deleting nightly-1970-01-12T13:46:40+0000 on a.qcow2" "deleting nightly-1970-01-12T13:46:40+0000 on b.qcow2")
missing=""
for w in "${want[@]}"; do grep -qF "blkhost rotate: $w" with.err || missing="$missing [$w]"; done
if [ -z "$missing" ]; then ok "progress = true: every image's open, the snapshot and each deletion named on stderr"
else not_ok "progress = true: every step named on stderr"; diag "missing:$missing"; diag "$(tr '\r' '\n' <with.err)"; fi
if tr '\r' '\n' <with.err | grep -qx '    (100.00/100%)' && tr '\r' '\n' <with.err | grep -qx '    (10.00/100%)'; then
    ok "progress = true: qemu-img's (NN.NN/100%) figures, ending at 100.00"
else not_ok "progress = true: (NN.NN/100%) figures"; diag "$(tr '\r' '\n' <with.err)"; fi
fresh
"$B" run rot.lua 1086400 nil a.qcow2 b.qcow2 >without.out 2>without.err
if cmp -s with.out without.out && [ -s with.out ]; then ok "the plan lines on stdout are the same with and without progress"
else not_ok "the plan lines on stdout are the same with and without progress"; diff with.out without.out | while read -r l; do diag "$l"; done; fi
fresh
AFTER=0 "$B" run rot.lua 1086400 nil a.qcow2 b.qcow2 >/dev/null 2>auto.err
if [ ! -s auto.err ]; then ok "default, stderr not a terminal: no progress, even past PROGRESS_AFTER"
else not_ok "default, stderr not a terminal: no progress"; diag "$(cat auto.err)"; fi
fresh
DRY=1 "$B" run rot.lua 1086400 true a.qcow2 b.qcow2 >/dev/null 2>dry.err
if grep -q "opening b.qcow2" dry.err && ! grep -q "taking\|deleting" dry.err; then
    ok "progress = true with dry_run: the images are opened, nothing taken or deleted"
else not_ok "progress with dry_run"; diag "$(cat dry.err)"; fi
out=$("$B" run rot.lua 1086400 sometimes a.qcow2 b.qcow2 2>&1)
if echo "$out" | grep -q 'progress must be true, false or "auto"' &&
   [ "$(qemu-img snapshot -l a.qcow2 | grep -c nightly-)" = 1 ]; then
    ok "progress = \"sometimes\" is refused by name before anything changes"
else not_ok "progress = \"sometimes\" is refused"; diag "$out"; fi

if ! script -qec true /dev/null >/dev/null 2>&1; then
    for d in "default on a terminal past PROGRESS_AFTER: shown" "default on a terminal, a quick run: nothing" \
             "progress = false on a terminal: nothing" "nightly-rotate.lua -p"; do
        skip "$d: script(1) cannot give a pty here"
    done
    exit 0
fi
# pty NAME ENV...: the rotation under script(1), whose output is the pty's.
pty() {
    local out=$1; shift
    fresh
    env "$@" script -qec "'$B' run rot.lua 1086400 \$P a.qcow2 b.qcow2" /dev/null >"$out" 2>&1 </dev/null
}
pty tty0.out AFTER=0 P=nil
if grep -q "blkhost rotate: deleting .* on b.qcow2" tty0.out; then ok "default on a terminal past PROGRESS_AFTER (0 s): shown"
else not_ok "default on a terminal past PROGRESS_AFTER: shown"; diag "$(tr '\r' '\n' <tty0.out)"; fi
pty tty1.out AFTER=3600 P=nil
if grep -q "^create nightly-" tty1.out && ! grep -q "blkhost rotate:" tty1.out; then
    ok "default on a terminal, a run shorter than PROGRESS_AFTER (3600 s): nothing"
else not_ok "default on a terminal, a quick run: nothing"; diag "$(cat tty1.out)"; fi
pty tty2.out AFTER=0 P=false
if grep -q "^create nightly-" tty2.out && ! grep -q "blkhost rotate:" tty2.out; then
    ok "progress = false on a terminal: nothing"
else not_ok "progress = false on a terminal: nothing"; diag "$(cat tty2.out)"; fi
fresh
"$B" run "$SOURCE_ROOT/examples/nightly-rotate.lua" --keep-last 1 --now 1086400 -p a.qcow2 b.qcow2 >/dev/null 2>ex.err
if grep -q "blkhost rotate: deleting .* on a.qcow2" ex.err; then ok "nightly-rotate.lua -p: the progress on stderr"
else not_ok "nightly-rotate.lua -p: the progress on stderr"; diag "$(cat ex.err)"; fi
