#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The man pages (docs/*.1, docs/*.7): each renders with `man -l` and with
# `groff -ww -z` without a warning and names itself; every command
# (lua/cmd/*.lua and run) has a page that mentions every option of its
# --help; blkhost(1) lists every command and global option; and
# blkhost-lua(7) names every function of the blkhost module and every
# node method (so pages and code do not drift apart).
source "$SOURCE_ROOT/tests/tap.sh"
need man groff

pages=("$SOURCE_ROOT"/docs/*.1 "$SOURCE_ROOT"/docs/*.7)
cmds=(run)
for f in "$SOURCE_ROOT"/lua/cmd/*.lua; do cmds+=("$(basename "$f" .lua)"); done
plan $((3 * ${#pages[@]} + 2 * ${#cmds[@]} + 4))

cd "$T" || exit 1
for page in "${pages[@]}"; do
    p=$(basename "$page"); name=${p%.*}
    if warn=$(LC_ALL=C MANWIDTH=80 man --warnings -l "$page" 2>&1 >page.txt) &&
       [ -z "$warn" ] && grep -q "^NAME" page.txt; then
        ok "man: $p renders with man -l, no warnings"
    else
        not_ok "man: $p renders with man -l, no warnings"; diag "$warn"
    fi
    if warn=$(groff -t -man -ww -z "$page" 2>&1) && [ -z "$warn" ]; then
        ok "man: $p: groff -ww -z gives no warning"
    else
        not_ok "man: $p: groff -ww -z gives no warning"; diag "$warn"
    fi
    if grep -A1 '^NAME' page.txt | grep -qE "^ +$name +- "; then
        ok "man: $p names $name"
    else
        not_ok "man: $p names $name"; diag "$(grep -A1 '^NAME' page.txt)"
    fi
done

# help_options CMD...: the options `blkhost CMD... --help` lists, the
# first word of each option line, and the long forms of "-x, --long".
help_options() {
    "$BLKHOST" "$@" --help | grep -E '^  +(-|[a-z]+=)' |
        sed -E 's/^ +//; s/ .*//; s/,$//; s/=.*$/=/; s/\[.*//' | sort -u
    "$BLKHOST" "$@" --help | grep -E '^  +-[a-zA-Z], --' | sed -E 's/^ +-[a-zA-Z], //; s/[ =].*//'
}
for c in "${cmds[@]}"; do
    page=$SOURCE_ROOT/docs/blkhost-$c.1
    if [ ! -f "$page" ]; then
        not_ok "man: blkhost $c has a page (docs/blkhost-$c.1)"
        skip "man: no page to check for blkhost $c's options"
        continue
    fi
    ok "man: blkhost $c has a page (docs/blkhost-$c.1)"
    LC_ALL=C MANWIDTH=200 man -l "$page" 2>/dev/null >page.txt
    missing=""
    for opt in $(help_options "$c"); do
        [ "$opt" = "-h" ] && continue
        grep -qF -- "$opt" page.txt || missing="$missing $opt"
    done
    if [ -z "$missing" ]; then
        ok "man: blkhost-$c.1 mentions every option of blkhost $c --help"
    else
        not_ok "man: blkhost-$c.1 mentions every option of blkhost $c --help"; diag "missing:$missing"
    fi
done

LC_ALL=C MANWIDTH=200 man -l "$SOURCE_ROOT/docs/blkhost.1" 2>/dev/null >page.txt
missing=""
for c in "${cmds[@]}"; do grep -qE "^ +$c( |$)" page.txt || missing="$missing $c"; done
if [ -z "$missing" ]; then ok "man: blkhost.1 lists every command (${#cmds[@]})"
else not_ok "man: blkhost.1 lists every command"; diag "missing:$missing"; fi
missing=""
for opt in $("$BLKHOST" --help | sed -n '/^Global options/,/^$/p' | grep -oE -- '--?[a-zA-Z-]+'); do
    grep -qF -- "$opt" page.txt || missing="$missing $opt"
done
if [ -z "$missing" ]; then ok "man: blkhost.1 mentions every global option of blkhost --help"
else not_ok "man: blkhost.1 mentions every global option"; diag "missing:$missing"; fi
for v in BLKHOST_PLUGIN_PATH BLKHOST_LUA_PATH BLKHOST_DEBUG; do
    grep -q "$v" page.txt || missing="$missing $v"
done
if [ -z "$missing" ]; then ok "man: blkhost.1 names the environment blkhost --help names"
else not_ok "man: blkhost.1 names the environment"; diag "missing:$missing"; fi

# The module's functions and the node methods, from a running blkhost;
# tables of constants (bh.signals, bh.timezone) by their own name.
"$BLKHOST" run - >api.txt <<'LUA'
local bh = require "blkhost"
for k, v in pairs(bh) do
  if k == "signals" or k == "timezone" or type(v) ~= "table" then print("bh." .. k)
  else for k2 in pairs(v) do print("bh." .. k .. "." .. k2) end end
end
local n <close> = bh.open(nil, { format = "null", size = "1M" })
local idx = getmetatable(n).__index
for k in pairs(type(idx) == "table" and idx or {}) do
  if not k:match("^__") then print("img:" .. k) end
end
LUA
sed 's/\\-/-/g; s/\\f[BIPR]//g' "$SOURCE_ROOT/docs/blkhost-lua.7" >lua7.txt
missing=""
for f in $(sort api.txt); do grep -qF -- "$f" lua7.txt || missing="$missing $f"; done
if [ -s api.txt ] && [ -z "$missing" ]; then
    ok "man: blkhost-lua.7 names every function of the module and every node method ($(wc -l <api.txt))"
else not_ok "man: blkhost-lua.7 names every function and node method"; diag "missing:$missing"; fi
