#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The installed tree (meson install into a DESTDIR, as ./dev.sh install
# does into a prefix): the binary's RUNPATH names no system directory,
# no installed file holds the build or source directory (reproducible
# builds), the installed binary runs with the installed plugins and Lua
# files, the installed .pc files build a plugin it loads and a program,
# and the man pages are there.
source "$SOURCE_ROOT/tests/tap.sh"
need meson readelf pkg-config cc
plan 11

D=$T/dest
if ! out=$(meson install -C "$BUILD_ROOT" --destdir "$D" --no-rebuild --quiet 2>&1); then
    not_ok "meson install --destdir: installs"; diag "$out"; exit 1
fi
bin=$(find "$D" -path '*/bin/blkhost' -type f | head -n 1)
if [ -x "$bin" ]; then ok "meson install --destdir: bin/blkhost installed"
else not_ok "meson install --destdir: bin/blkhost installed"; exit 1; fi
prefix=${bin%/bin/blkhost}; prefix=${prefix#"$D"}
lib=$(dirname "$(find "$D" -name 'libblkhost.so.*' -type f | head -n 1)")
libdir=${lib#"$D"}
man=$(find "$D" -type d -name man1 | head -n 1); man=${man%/man1}

runpath=$(readelf -d "$bin" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\]/\2/p')
bad=""
IFS=: read -ra parts <<<"$runpath"
for p in "${parts[@]+"${parts[@]}"}"; do
    case $p in '$ORIGIN'*) ;; *) bad="$bad $p" ;; esac
done
if [ -z "$bad" ]; then ok "installed blkhost: RUNPATH '${runpath:-none}' names no absolute directory"
else not_ok "installed blkhost: RUNPATH names no absolute directory"; diag "RUNPATH: $runpath"; fi

if [ -n "$runpath" ]; then
    found=$(env -u LD_LIBRARY_PATH ldd "$bin" | awk '/libblkhost\.so/ {print $3}')
    if [ "${found#"$D"}" != "$found" ]; then ok "installed blkhost: finds the installed libblkhost through \$ORIGIN ($found)"
    else not_ok "installed blkhost: finds the installed libblkhost through \$ORIGIN"; diag "ldd: $found"; fi
else
    skip "libdir $libdir is a system one: no RUNPATH to follow"
fi

hits=$(grep -rl --binary-files=text -e "$BUILD_ROOT" -e "$SOURCE_ROOT/" "$D" 2>/dev/null)
if [ -z "$hits" ]; then ok "no installed file holds the build directory ($BUILD_ROOT) or the source directory"
else not_ok "no installed file holds the build or source directory"; diag "$hits"; fi
if [ -z "$(find "$D" -name 'blkhost-uninstalled*')" ]; then ok "the build-tree marker is not installed"
else not_ok "the build-tree marker is not installed"; fi

# The installed binary with the installed plugins and Lua files (the
# compiled-in places are under the prefix, not the DESTDIR).
run_installed() {
    env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$lib" \
        BLKHOST_PLUGIN_PATH="$lib/blkhost/drivers:$lib/blkhost/plugins:$T/plug" \
        BLKHOST_LUA_PATH="$D$prefix/share/blkhost/lua" "$bin" "$@"
}
cd "$T" || exit 1
if run_installed create -q -f qcow2 a.qcow2 1M && run_installed info a.qcow2 | grep -q "^format: qcow2\|^file format: qcow2" &&
   run_installed --help | grep -q "^  convert "; then
    ok "installed blkhost: create and info a qcow2 with the installed plugins, --help lists the installed commands"
else not_ok "installed blkhost: create and info with the installed plugins"; diag "$(run_installed plugins 2>&1)"; fi
if [ -d "$prefix/share/blkhost/lua" ]; then
    skip "blkhost is installed for real under $prefix; cannot tell its Lua files from the source tree's"
else
    check_fails "installed blkhost without BLKHOST_LUA_PATH looks in its prefix, not the source tree" \
        "unknown command 'info'" env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$lib" "$bin" info a.qcow2
fi

# pkg-config on the installed .pc files: PKG_CONFIG_SYSROOT_DIR puts the
# DESTDIR in front of blkhost-plugin.pc's paths (it requires nothing);
# blkhost.pc requires GLib, whose paths must stay: a copy of it gets the
# DESTDIR in its prefix line instead.
export PKG_CONFIG_PATH="$lib/pkgconfig"
mkdir plug
if cc -O2 -Wall -Werror -fPIC -shared -o plug/xor.so "$SOURCE_ROOT/examples/driver/xor.c" \
      $(PKG_CONFIG_SYSROOT_DIR="$D" pkg-config --cflags --libs blkhost-plugin) 2>cc.err; then
    ok "examples/driver/xor.c builds with the installed blkhost-plugin.pc"
else not_ok "xor.c builds with the installed blkhost-plugin.pc"; diag "$(cat cc.err)"; fi
truncate -s 1M x.img
printf 'local bh = require "blkhost"\nlocal d <close> = bh.open(arg[1], {format = "xor", key = 15})\nd:write(0, "hello")\nprint(d:read(0, 5))\n' > xor.lua
out=$(run_installed run xor.lua x.img 2>&1)
if [ "$out" = hello ] && [ "$(head -c 5 x.img)" = "gjcc\`" ]; then
    ok "the installed blkhost loads that plugin from its path and writes through it"
else not_ok "the installed blkhost loads the xor plugin"; diag "$out"; fi
printf '#include <stdio.h>\n#include <blkhost/blkhost.h>\nint main(void) { puts(bh_version()); return 0; }\n' > v.c
mkdir pc && sed "s|^prefix=.*|prefix=$D$prefix|" "$lib/pkgconfig/blkhost.pc" > pc/blkhost.pc
if cc -Wall -Werror -o v v.c $(PKG_CONFIG_PATH=$T/pc pkg-config --cflags --libs blkhost) 2>cc.err &&
   [ "$(env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$lib" ./v)" = "$("$BLKHOST" run - <<<'print(require("blkhost").version)')" ]; then
    ok "a program builds and links with the installed blkhost.pc and prints bh_version()"
else not_ok "a program builds with the installed blkhost.pc"; diag "$(cat cc.err)"; fi
unset PKG_CONFIG_PATH

missing=""
for p in man1/blkhost.1 man7/blkhost-lua.7 man1/blkhost-run.1 man1/blkhost-info.1; do
    [ -f "$man/$p" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then ok "man pages installed: blkhost(1), blkhost-lua(7), blkhost-run(1), ..."
else not_ok "man pages installed"; diag "missing:$missing"; fi
