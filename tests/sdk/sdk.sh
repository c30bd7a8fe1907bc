#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The out-of-tree example driver builds with nothing but its Makefile and
# pkg-config, loads by path, and does what it says (XOR by key).
. "$SOURCE_ROOT/tests/tap.sh"
need make cc pkg-config cmp
plan 12

export PKG_CONFIG_PATH="$BUILD_ROOT/core"
check "pkg-config finds blkhost-plugin (uninstalled)" pkg-config --exists blkhost-plugin
check "the plugin ABI's compiler flags name no GLib" \
    bash -c '! pkg-config --cflags --libs blkhost-plugin | grep -qi glib'
# With GLib's headers out of reach, blkhost-plugin.h must still compile.
printf '#include <blkhost/blkhost-plugin.h>\n#ifdef G_BEGIN_DECLS\n#error GLib leaked in\n#endif\nint main(void) { return 0; }\n' > "$T/noglib.c"
check "blkhost-plugin.h compiles with only libc and the plugin headers" \
    cc -Wall -Werror $(pkg-config --cflags blkhost-plugin) -c "$T/noglib.c" -o "$T/noglib.o"
cp "$SOURCE_ROOT/examples/driver/xor.c" "$SOURCE_ROOT/examples/driver/Makefile" "$T/"
check "the Makefile is at most 5 lines" test "$(wc -l < "$T/Makefile")" -le 5
check "examples/driver builds with make" make -C "$T" -s
# The uninstalled library must be found at run time too.
export LD_LIBRARY_PATH="$BUILD_ROOT/core${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

truncate -s 1M "$T/disk.img"
cat > "$T/use.lua" <<'LUA'
local bh = require "blkhost"
local rec = bh.plugin.load(arg[1])
assert(rec.name == "xor", "plugin name is " .. tostring(rec.name))
local d <close> = bh.open(arg[2], {format = "xor", key = 0x0f})
d:write(0, "hello")
assert(d:read(0, 5) == "hello", "round trip through xor")
assert(d:info()["xor-key"] == 15, "info shows the key")
print("used")
LUA
check "loads by path and round-trips through bh.open" \
    "$BLKHOST" run "$T/use.lua" "$T/xor.so" "$T/disk.img"
# 'h' ^ 0x0f = 'g'
check "bytes on disk are XORed with the key" \
    test "$(head -c 5 "$T/disk.img" | od -An -c | tr -d ' \n')" = "gjcc\`"
cat > "$T/badkey.lua" <<'LUA'
local bh = require "blkhost"
bh.plugin.load(arg[1])
bh.open(arg[2], {format = "xor", key = 300})
LUA
check_fails "key=300 refused with a clear message" "key.*300.*larger than 255" \
    "$BLKHOST" run "$T/badkey.lua" "$T/xor.so" "$T/disk.img"
check_fails "plugin.load of a missing file names it" "nosuch.so" \
    "$BLKHOST" run <(echo 'require("blkhost").plugin.load("/nosuch.so")')

# The other half of the ABI matrix: a driver doing all its I/O through
# submit (request.h), with no pread, completing on threads of its own.
check "a submit-only driver builds against blkhost-plugin alone" \
    cc -Wall -Werror -shared -fPIC -o "$T/ramsubmit.so" "$SOURCE_ROOT/tests/sdk/ramsubmit.c" \
        $(pkg-config --cflags --libs blkhost-plugin) -lpthread
cat > "$T/submit.lua" <<'LUA'
local bh = require "blkhost"
local rec = bh.plugin.load(arg[1])
assert(rec.name == "ramsubmit", "plugin name is " .. tostring(rec.name))
local d <close> = bh.open(nil, {format = "ramsubmit", size = "4M"})
local blob = string.rep("abcdefgh", 8192)          -- 64 KiB
d:write(4096, blob)
assert(d:read(4096, #blob) == blob, "64 KiB round trip through submit")
d:write(0, "x", {fua = true})
assert(d:read(0, 1) == "x", "FUA write through submit")
d:zero(4096, 65536)
assert(d:read(4096, 65536) == string.rep("\0", 65536), "zeroes through submit")
d:flush()
print("used")
LUA
check "a submit-only driver serves reads, writes, FUA, zeroes and flush" \
    "$BLKHOST" run "$T/submit.lua" "$T/ramsubmit.so"
check_fails "reading past its end is refused by the core, not the driver" "past the end" \
    "$BLKHOST" run <(printf 'local bh = require "blkhost"\nbh.plugin.load(arg[1])\nlocal d = bh.open(nil, {format = "ramsubmit", size = "1M"})\nd:read(1048575, 2)\n') "$T/ramsubmit.so"
