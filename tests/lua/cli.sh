#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The blkhost command line: --help, --version, run (arg, exit status,
# syntax and runtime errors, <close> on error), and the built-in commands
# plugins, create and info, checked against qemu-img where it has a say.
source "$SOURCE_ROOT/tests/tap.sh"
plan 48

B=$BLKHOST

# ---- --version, --help, bad invocations ----
out=$("$B" --version 2>&1)
if [[ $? -eq 0 && $out =~ ^blkhost\ [0-9]+\.[0-9]+\.[0-9]+ ]]; then ok "--version prints 'blkhost X.Y.Z'"; else not_ok "--version"; diag "$out"; fi
out=$("$B" --help 2>&1)
if [[ $? -eq 0 && $out == *Usage:* && $out == *run* && $out == *info* && $out == *create* && $out == *plugins* ]]; then
    ok "--help exits 0 and lists run, info, create, plugins"
else not_ok "--help"; diag "$out"; fi
check_fails "no arguments: usage on stderr, exit 1" "Usage:" "$B"
check_fails "unknown command 'frobnicate' refused, naming it" "unknown command 'frobnicate'" "$B" frobnicate
check_fails "run without a script refused" "run needs a script" "$B" run

# ---- run: arg, results, errors ----
cat > "$T/args.lua" <<'LUA'
local n = select("#", ...)
print(arg[0], arg[1], arg[2], #arg, n, (...))
LUA
out=$("$B" run "$T/args.lua" one "two words" 2>&1)
if [[ $out == "$T/args.lua	one	two words	2	2	one" ]]; then ok "run sets arg[0], arg[1..] and passes ... like lua(1)"; else not_ok "run arg convention"; diag "$out"; fi
echo 'return 3' > "$T/ret3.lua"
"$B" run "$T/ret3.lua"; rc=$?
if [[ $rc -eq 3 ]]; then ok "a script returning 3 exits 3"; else not_ok "script return status (got $rc)"; fi
echo 'print(require("blkhost").version)' | "$B" run - > "$T/stdin.out" 2>&1
if grep -qE '^[0-9]+\.[0-9]+' "$T/stdin.out"; then ok "run - reads the script from stdin"; else not_ok "run -"; diag "$(cat "$T/stdin.out")"; fi
echo 'local j = require "blkhost.json"; print(j.encode({a = {1, 2}, b = "x\n"}))' > "$T/json.lua"
out=$("$B" run "$T/json.lua" 2>&1)
if [[ $out == '{"a":[1,2],"b":"x\n"}' ]]; then ok "package.path finds lua/blkhost/json.lua"; else not_ok "require blkhost.json"; diag "$out"; fi

printf 'local x = 1\nlocal y = = 2\n' > "$T/syntax.lua"
out=$("$B" run "$T/syntax.lua" 2>&1); rc=$?
if [[ $rc -eq 1 && $out == "blkhost: $T/syntax.lua:2:"* ]]; then ok "syntax error: exit 1 with 'blkhost: FILE:2:' message"; else not_ok "syntax error (rc $rc)"; diag "$out"; fi
printf 'local function f()\n  error("deliberate failure")\nend\nf()\n' > "$T/runtime.lua"
out=$("$B" run "$T/runtime.lua" 2>&1); rc=$?
if [[ $rc -eq 1 && $out == *"blkhost: $T/runtime.lua:2: deliberate failure"* && $out == *"stack traceback:"* ]]; then
    ok "runtime error: exit 1, message and traceback"
else not_ok "runtime error (rc $rc)"; diag "$out"; fi
check_fails "run of a missing script refused, naming it" "cannot open $T/nothere.lua" "$B" run "$T/nothere.lua"
echo 'error(setmetatable({}, {__tostring = function() return "custom error object" end}))' > "$T/errobj.lua"
check_fails "an error object with __tostring is shown" "custom error object" "$B" run "$T/errobj.lua"

"$B" create -q -f raw "$T/locked.raw" 1M >/dev/null 2>&1
cat > "$T/closeerr.lua" <<'LUA'
local bh = require "blkhost"
local img <close> = bh.open(arg[1], { format = "raw" })
img:write(0, "before")
io.stdout:write("opened\n")
error("failure inside the close scope")
LUA
out=$("$B" run "$T/closeerr.lua" "$T/locked.raw" 2>&1); rc=$?
if [[ $rc -eq 1 && $out == *opened* && $out == *"failure inside the close scope"* ]]; then ok "error inside a <close> scope: exit 1 with the message"; else not_ok "close-scope error (rc $rc)"; diag "$out"; fi
if head -c 6 "$T/locked.raw" | grep -q before; then ok "... and the write made before the error is in the file"; else not_ok "write before close-scope error missing"; fi

# ---- plugins ----
out=$("$B" plugins 2>&1); rc=$?
all=1
for d in raw file null memory; do grep -qE "^  $d " <<<"$out" || all=0; done
if [[ $rc -eq 0 && $out == *drivers:* && $all -eq 1 ]]; then
    ok "plugins lists raw, file, null and memory under drivers:"
else not_ok "plugins listing (rc $rc)"; diag "$out"; fi
mkdir -p "$T/plugdir"
echo "not a plugin" > "$T/plugdir/broken.so"
out=$(BLKHOST_PLUGIN_PATH="$T/plugdir" "$B" plugins 2>&1); rc=$?
if [[ $rc -eq 0 && $out == *refused:* && $out == *"$T/plugdir/broken.so"* ]]; then ok "plugins shows a broken .so under refused: with its path, exit 0"; else not_ok "plugins refused (rc $rc)"; diag "$out"; fi
out=$("$B" plugins --output=json 2>&1)
if echo "$out" | jq -e '.plugins | map(select(.name == "raw" and .kind == "driver")) | length == 1' >/dev/null 2>&1; then
    ok "plugins --output=json is JSON listing raw as a driver"
else not_ok "plugins json"; diag "$out"; fi
check_fails "plugins with an extra argument refused" "unexpected argument" "$B" plugins extra

# ---- create ----
out=$("$B" create -f raw "$T/new.raw" 1M 2>&1); rc=$?
if [[ $rc -eq 0 && $out == "Formatting '$T/new.raw', fmt=raw size=1048576" ]]; then ok "create -f raw FILE 1M prints what it formats"; else not_ok "create (rc $rc)"; diag "$out"; fi
if [[ $(stat -c %s "$T/new.raw") -eq 1048576 ]]; then ok "created file is 1048576 bytes"; else not_ok "created file size"; fi
check "create with -o size=64K (qemu-img order: options before FILE)" "$B" create -q -o size=64K "$T/opt.raw"
if [[ $(stat -c %s "$T/opt.raw" 2>/dev/null) -eq 65536 ]]; then ok "-o size=64K gives a 64 KiB file"; else not_ok "-o size"; fi
check_fails "create without a file refused" "no file given" "$B" create -f raw
check_fails "create with size '12Q' refused, naming it" "invalid size '12Q'" "$B" create -f raw "$T/bad.raw" 12Q
check_fails "create with size '-5' refused" "size" "$B" create -f raw "$T/bad2.raw" -- -5
check_fails "create with unknown -o key refused, naming it" "frobs" "$B" create -f raw -o frobs=1 "$T/bad3.raw" 1M
check_fails "create with unknown format refused, listing formats" "nosuch.*raw" "$B" create -f nosuch "$T/bad4.raw" 1M
check_fails "create -F without -b refused" "-F needs -b" "$B" create -F raw "$T/bad5.raw" 1M
check_fails "create with an unknown option refused" "unknown option '-Z'" "$B" create -Z "$T/bad6.raw" 1M
if [[ ! -e $T/bad.raw && ! -e $T/bad4.raw ]]; then ok "refused creates left no files behind"; else not_ok "refused creates left files"; ls "$T"; fi

# ---- info ----
"$B" run - "$T/new.raw" <<'LUA'
local n <close> = require("blkhost").open(arg[1], { format = "raw" })
n:write(4096, string.rep("z", 8192))
LUA
out=$("$B" info "$T/new.raw" 2>&1); rc=$?
if [[ $rc -eq 0 && $out == *"image: $T/new.raw"* && $out == *"file format: raw"* && $out == *"virtual size: 1 MiB (1048576 bytes)"* && $out == *"disk size: "* ]]; then
    ok "info prints image, file format, virtual size and disk size"
else not_ok "info text (rc $rc)"; diag "$out"; fi
if [[ $out != *read-only* && $out != *cache:* ]]; then ok "info hides open-mode facts (read-only, cache)"; else not_ok "info shows open modes"; diag "$out"; fi
q=$(qemu-img info "$T/new.raw" 2>/dev/null | grep '^virtual size')
if [[ -z $q ]]; then skip "qemu-img not available"; elif grep -qF "$q" <<<"$out"; then ok "virtual size line identical to qemu-img's"; else not_ok "virtual size line differs"; diag "ours: $out"; diag "qemu: $q"; fi
out=$("$B" info --output=json "$T/new.raw" 2>&1)
if echo "$out" | jq -e --arg f "$T/new.raw" '.format == "raw" and ."virtual-size" == 1048576 and .filename == $f and (."actual-size" | type) == "number"' >/dev/null 2>&1; then
    ok "info --output=json has filename, format, virtual-size, actual-size"
else not_ok "info json"; diag "$out"; fi
if echo "$out" | /usr/bin/python3 -m json.tool >/dev/null 2>&1; then ok "info JSON parses with python3 -m json.tool"; else not_ok "info JSON does not parse"; diag "$out"; fi
qj=$(qemu-img info --output=json "$T/new.raw" 2>/dev/null)
if [[ -z $qj ]]; then skip "qemu-img not available"
elif [[ $(jq '."virtual-size"' <<<"$out") == $(jq '."virtual-size"' <<<"$qj") && $(jq -r .format <<<"$out") == $(jq -r .format <<<"$qj") ]]; then
    ok "info JSON virtual-size and format equal qemu-img's"
else not_ok "info JSON differs from qemu-img"; diag "ours: $out"; diag "qemu: $qj"; fi
out=$("$B" info -f raw --output json "$T/opt.raw" 2>&1)
if [[ $(jq '."virtual-size"' <<<"$out" 2>/dev/null) == 65536 ]]; then ok "info -f raw --output json (separate value) works"; else not_ok "info -f raw"; diag "$out"; fi
out=$("$B" info "$T/missing.raw" 2>&1); rc=$?
if [[ $rc -eq 1 && $out == "blkhost info: "*"missing.raw"*"No such file"* && $out != *traceback* ]]; then
    ok "info of a missing file: exit 1, one clear line naming it"
else not_ok "info missing file (rc $rc)"; diag "$out"; fi
# A file with no read permission: root reads anything, so drop to nobody.
if [[ $(id -u) -ne 0 ]]; then
    "$B" create -q -f raw "$T/noperm.raw" 64K; chmod 000 "$T/noperm.raw"
    check_fails "info of a file with no read permission refused (EACCES)" "Permission denied" "$B" info "$T/noperm.raw"
elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$B" --version >/dev/null 2>&1; then
    chmod 711 "$T"; mkdir -m 755 "$T/perm"
    "$B" create -q -f raw "$T/perm/noperm.raw" 64K; chmod 000 "$T/perm/noperm.raw"
    check_fails "info of a file with no read permission refused (EACCES, run as nobody)" "noperm.raw.*Permission denied" \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$B" info "$T/perm/noperm.raw"
else
    skip "running as root and cannot drop to nobody to test a file with no read permission"
fi
check_fails "info of a directory refused" "directory" "$B" info "$T"
check_fails "info without an image refused" "no image given" "$B" info
check_fails "info --output=xml refused" "human or json" "$B" info --output=xml "$T/new.raw"
check_fails "info with an unknown format refused" "unknown format 'nosuch'" "$B" info -f nosuch "$T/new.raw"
out=$("$B" info --help 2>&1)
if [[ $? -eq 0 && $out == *Usage:\ blkhost\ info* ]]; then ok "info --help prints usage, exit 0"; else not_ok "info --help"; diag "$out"; fi

# ---- info on qcow2 (when the driver is built) ----
if "$B" plugins | grep -qE '^  qcow2 '; then
    "$B" create -q -f qcow2 "$T/base.qcow2" 1G
    "$B" create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/top.qcow2"
    out=$("$B" info --output=json "$T/base.qcow2" 2>&1)
    qj=$(qemu-img info --output=json "$T/base.qcow2" 2>&1)
    if [[ $(jq '."cluster-size"' <<<"$out") == 65536 && $(jq '."virtual-size"' <<<"$out") == $(jq '."virtual-size"' <<<"$qj") ]]; then
        ok "qcow2 info JSON: cluster-size and virtual-size as qemu-img says"
    else not_ok "qcow2 info JSON"; diag "ours: $out"; diag "qemu: $qj"; fi
    out=$("$B" info "$T/top.qcow2" 2>&1)
    if [[ $out == *"file format: qcow2"* && $out == *"cluster_size: 65536"* && $out == *"backing file: $T/base.qcow2"* ]]; then
        ok "qcow2 info text shows cluster_size and the backing file"
    else not_ok "qcow2 info text"; diag "$out"; fi
else
    skip "qcow2 driver not built"; skip "qcow2 driver not built"
fi

# ---- BLKHOST_LUA_PATH ----
mkdir -p "$T/lualib/cmd"
echo 'print("hello from " .. arg[0]:match("[^/]*$") .. " " .. tostring(arg[1]))' > "$T/lualib/cmd/hello.lua"
out=$(BLKHOST_LUA_PATH="$T/lualib" "$B" hello world 2>&1)
if [[ $out == "hello from hello.lua world" ]]; then ok "BLKHOST_LUA_PATH adds commands (cmd/hello.lua)"; else not_ok "BLKHOST_LUA_PATH"; diag "$out"; fi
