#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The toolbox's man pages (docs/blkhost-CMD.1) render with `man -l`
# without groff warnings, name their command, and mention every option
# the command's --help lists (so the two do not drift apart).
source "$SOURCE_ROOT/tests/tap.sh"
need man

cmds=(info map compare convert check resize rebase commit measure dd)
plan $((3 * ${#cmds[@]}))

cd "$T" || exit 1
for c in "${cmds[@]}"; do
    page=$SOURCE_ROOT/docs/blkhost-$c.1
    if warn=$(LC_ALL=C MANWIDTH=80 man --warnings -l "$page" 2>&1 >page.txt) &&
       [ -z "$warn" ] && grep -q "^NAME" page.txt; then
        ok "man: blkhost-$c.1 renders with man -l, no warnings"
    else
        not_ok "man: blkhost-$c.1 renders with man -l, no warnings"; diag "$warn"
    fi
    if grep -A1 '^NAME' page.txt | grep -qE "blkhost-$c +- "; then
        ok "man: blkhost-$c.1 names blkhost-$c"
    else
        not_ok "man: blkhost-$c.1 names blkhost-$c"
    fi
    # The options of --help: the first words of its option lines.
    missing=""
    for opt in $("$BLKHOST" "$c" --help | grep -E '^  +(-|[a-z]+=)' |
                 sed -E 's/^ +//; s/ .*//; s/,$//; s/=.*$/=/; s/\[.*//' | sort -u); do
        [ "$opt" = "-h" ] && continue
        grep -qF -- "$opt" page.txt || missing="$missing $opt"
    done
    "$BLKHOST" "$c" --help | grep -E '^  +-[a-zA-Z], --' | sed -E 's/^ +-[a-zA-Z], //; s/[ =].*//' |
    while read -r opt; do grep -qF -- "$opt" page.txt || echo "$opt"; done >long.txt
    missing="$missing $(tr '\n' ' ' <long.txt)"
    if [ -z "${missing// /}" ]; then
        ok "man: blkhost-$c.1 mentions every option of blkhost $c --help"
    else
        not_ok "man: blkhost-$c.1 mentions every option of blkhost $c --help"; diag "missing:$missing"
    fi
done
