#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost vmstate` on real snapshots: one QEMU took (qemu-system-x86_64
# -accel tcg, no OS, `savevm` in its monitor) and one blkhost took
# (bh.savevm with script state).  The listing is checked against the
# stream's own JSON description and against QEMU's
# scripts/analyze-migration.py, which is not shipped with Debian's QEMU:
# give a QEMU source tree as QEMU_SRC (e.g. QEMU_SRC=~/src/qemu meson test
# vmstate-tool), otherwise those checks are skipped.
# Args: vmstate-check.py, savevm-lua.lua, the vmstate-qemu helper.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img /usr/bin/python3
CHECK=$1 SAVEVM_LUA=$2 HELPER=$3
PY=/usr/bin/python3
B=$BLKHOST
plan 24
cd "$T" || exit 1

AM=
if [ -z "${QEMU_SRC:-}" ]; then
    AM_SKIP="set QEMU_SRC to a QEMU source tree to run its scripts/analyze-migration.py"
elif [ ! -f "$QEMU_SRC/scripts/analyze-migration.py" ]; then
    AM_SKIP="QEMU_SRC=$QEMU_SRC has no scripts/analyze-migration.py"
else
    AM=$QEMU_SRC/scripts/analyze-migration.py
fi
# analyze DESC WHAT CMP ARGS...: run analyze-migration.py ARGS into am.out;
# WHAT turns that into text (keys: its top-level keys, one a line; desc:
# "-" when its devices equal LIST.json's FULL sections; raw: as it is)
# that must equal the output of the command CMP.
analyze() {
    local desc=$1 what=$2 cmp=$3 got want; shift 3
    if [ -z "$AM" ]; then skip "$desc ($AM_SKIP)"; return; fi
    if ! "$PY" "$AM" "$@" >am.out 2>&1; then
        not_ok "$desc"; diag "$(tail -5 am.out)"; return
    fi
    case $what in
        keys) got=$("$PY" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))))' am.out) ;;
        desc*) got=$("$PY" "$CHECK" desc "${what#desc:}" am.out 2>&1) && got=- ;;
        raw) got=$(cat am.out) ;;
    esac
    want=$(eval "$cmp" 2>&1)
    if [ "$got" = "$want" ]; then ok "$desc"; else
        not_ok "$desc"; diag "analyze-migration.py gives: $got"; diag "expected: $want"
    fi
}

# listing DESC "ARGS" PATTERN...: blkhost ARGS exits 0 and its output has
# a line matching each PATTERN (grep -E).
listing() {
    local desc=$1 args=$2 out rc pat; shift 2
    out=$(eval "\"\$B\" $args" 2>&1); rc=$?
    for pat in "$@"; do
        echo "$out" | grep -qE -- "$pat" || rc="$rc, no line /$pat/"
    done
    if [ "$rc" = 0 ]; then ok "$desc"; else not_ok "$desc"; diag "exit $rc"; diag "$out"; fi
}

# ---- a snapshot QEMU took ----
if ! command -v qemu-system-x86_64 >/dev/null; then
    for i in $(seq 14); do skip "qemu-system-x86_64 is not installed"; done
else
    # qemu_savevm IMAGE MACHINE: a new IMAGE, and `savevm snap1` in the
    # monitor of a VM of that machine type running SeaBIOS (no OS).
    qemu_savevm() {
        qemu-img create -q -f qcow2 "$1" 64M
        printf 'savevm snap1\nquit\n' | timeout 120 qemu-system-x86_64 -accel tcg \
            -nodefaults -display none -M "$2" -m 32 -monitor stdio \
            -drive file="$1",if=none,id=d0 -device virtio-blk,drive=d0 2>&1
    }
    out=$(qemu_savevm q.qcow2 pc)
    if qemu-img snapshot -l q.qcow2 | grep -q ' snap1 '; then
        ok "qemu: savevm snap1 of a running TCG pc machine (32 MiB, SeaBIOS, no OS) into q.qcow2"
    else
        not_ok "qemu: savevm snap1"; diag "$out"
    fi
    if diff <(qemu-img snapshot -l q.qcow2) <("$B" snapshot -l q.qcow2) >d.txt 2>&1; then
        ok "snapshot -l: the table (VM SIZE, DATE, VM CLOCK) equals qemu-img snapshot -l's"
    else
        not_ok "snapshot -l: equals qemu-img snapshot -l"; diag "$(cat d.txt)"
    fi
    # RAM comes in START, PARTs and END: how many PARTs depends on how
    # much the guest dirtied while QEMU saved (4 records in one CI run
    # under load, 3 on a quiet machine), so the count is not fixed.
    RAM_ROW='^ +[0-9]+  ram +0 +4 +[0-9]+  iterative, [0-9]+ records$'
    CPU_ROW='^ +[0-9]+  cpu +0 +[0-9]+ +[0-9]+  full$'
    EOF_LINE='^EOF at offset [0-9]*; JSON description of'
    listing "vmstate -l: QEMU's sections (ram instance 0 version 4 in START/PART/END records, cpu, apic, i8259 instance 1, ...), machine, EOF, status 0" \
        "vmstate -l q.qcow2 snap1" "$RAM_ROW" "$CPU_ROW" '^ +[0-9]+  apic +0 +[0-9]+ +[0-9]+  full$' \
        '^ +[0-9]+  i8259 +1 ' '^Stream: QEVM version 3, machine pc-i440fx-' "$EOF_LINE"
    "$B" vmstate --output=json --dump q.mig q.qcow2 snap1 >q.json
    size=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["vm-state-size"])' q.json)
    if [ "$(stat -c %s q.mig)" = "$size" ] && [ "$(head -c 8 q.mig | od -An -tx1 | tr -d ' \n')" = 5145564d00000003 ]; then
        ok "vmstate --dump: writes the whole stream ($size bytes, QEVM 3)"
    else
        not_ok "vmstate --dump: the whole stream"; diag "$(ls -l q.mig) size $size"
    fi
    check "vmstate --output=json: every FULL section's idstr, instance, version and size equal QEMU's own JSON description, and the records (RAM too) add up to EOF" \
        "$PY" "$CHECK" sizes q.json q.mig
    analyze "analyze-migration.py -d state: the same sections (idstr, section id) in the same order, RAM included" \
        keys "'$PY' '$CHECK' keys q.json" -f q.mig
    analyze "analyze-migration.py -d desc: its devices (name, instance, version) are our FULL sections" \
        desc:q.json "echo -" -f q.mig -d desc

    # Machine types before 2.4 write no section footers: the FULL
    # sections' sizes then come from the JSON description.
    qemu_savevm o.qcow2 pc-i440fx-2.3 >/dev/null
    listing "vmstate -l: a pc-i440fx-2.3 snapshot (no section footers) is listed whole, sizes from its JSON description, status 0" \
        "vmstate -l o.qcow2 snap1" '^No section footers: the sizes of FULL sections are those its JSON description gives$' \
        "$RAM_ROW" "$CPU_ROW" "$EOF_LINE"
    "$B" vmstate --output=json --dump o.mig o.qcow2 snap1 >o.json
    check "vmstate --output=json: pc-i440fx-2.3's records, RAM included, add up to EOF without footers" \
        "$PY" "$CHECK" sizes o.json o.mig
    analyze "analyze-migration.py -d state on the pc-i440fx-2.3 stream: the same sections" \
        keys "'$PY' '$CHECK' keys o.json" -f o.mig

    qemu-img snapshot -c disk q.qcow2
    check_fails "vmstate: a disk-only snapshot is refused, as QEMU's loadvm does" \
        "^blkhost vmstate: Snapshot 'disk' of 'q.qcow2' is a disk-only snapshot" \
        "$B" vmstate q.qcow2 disk
    check_fails "vmstate: a snapshot that does not exist is named" \
        "^blkhost vmstate: Snapshot 'nosuch' does not exist in 'q.qcow2'" \
        "$B" vmstate -l q.qcow2 nosuch

    # Corrupt the stream inside a copy of the image: the listing stops at
    # the broken section and names it, with status 2.
    cp q.qcow2 f.qcow2
    "$PY" "$CHECK" patch q.json q.mig f.qcow2 footer timer >/dev/null
    out=$("$B" vmstate -l f.qcow2 snap1 2>&1); rc=$?
    if [ $rc -eq 2 ] && echo "$out" | grep -qE '^ +[0-9]+  ram ' &&
       ! echo "$out" | grep -qE '^ +[0-9]+  (timer|cpu) ' &&
       echo "$out" | grep -q "stopped at offset [0-9]*: section 'timer' instance 0 (id 0) at offset [0-9]*: no section footer"; then
        ok "vmstate -l: a broken footer of 'timer': lists ram, stops naming timer, status 2"
    else
        not_ok "vmstate -l: a broken footer of 'timer'"; diag "exit $rc"; diag "$out"
    fi
    cp q.qcow2 r.qcow2
    "$PY" "$CHECK" patch q.json q.mig r.qcow2 ram-flags ram >/dev/null
    out=$("$B" vmstate -l --output=json r.qcow2 snap1 2>&1); rc=$?
    if [ $rc -eq 2 ] && echo "$out" | grep -q '"complete": false' &&
       echo "$out" | grep -q "section 'ram' (id [0-9]*): RAM flags 0x84 at offset 43 cannot be decoded (an RDMA hook)"; then
        ok "vmstate --output=json: RAM flags it cannot decode: complete false, the error names ram, status 2"
    else
        not_ok "vmstate: undecodable RAM flags"; diag "exit $rc"; diag "$out"
    fi
fi

# ---- a snapshot blkhost took ----
qemu-img create -q -f qcow2 b.qcow2 16M
check "blkhost: bh.savevm of two script states (one with a subsection)" \
    "$B" run "$SAVEVM_LUA" b.qcow2 s1
listing "vmstate: blkhost's sections (lua:counter instance 0 v2 46 bytes, lua:flags instance 3 v1 17 bytes)" \
    "vmstate b.qcow2 s1" '^ +0  lua:counter +0 +2 +46  full$' '^ +1  lua:flags +3 +1 +17  full$'
"$B" vmstate --output=json --dump b.mig b.qcow2 s1 >b.json
check "vmstate: blkhost's stream ends with a JSON description that agrees with every section" \
    "$PY" "$CHECK" sizes b.json b.mig
if diff <(qemu-img snapshot -l b.qcow2) <("$B" snapshot -l b.qcow2) >d.txt 2>&1; then
    ok "snapshot -l: on blkhost's snapshot too, the table equals qemu-img snapshot -l's"
else
    not_ok "snapshot -l: blkhost's snapshot"; diag "$(cat d.txt)"
fi
analyze "analyze-migration.py reads blkhost's stream: the same sections" \
    keys "'$PY' '$CHECK' keys b.json" -f b.mig
analyze "analyze-migration.py -d desc of blkhost's stream: its devices are our sections" \
    desc:b.json "echo -" -f b.mig -d desc
# What savevm-lua.lua saved, as analyze-migration.py prints it.
cat >b.expected <<'JSON'
{
    "lua:counter (0)": {
        "n": "0x00000007",
        "label.length": "0x00000005",
        "label": "73 65 76 65 6e",
        "lua:counter/extra": {
            "xs.count": "0x00000003",
            "xs": [
                "0x0001",
                "0xfffe (-2)",
                "0x0003"
            ]
        }
    },
    "lua:flags (1)": {
        "on": true,
        "key": "6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b"
    }
}
JSON
analyze "analyze-migration.py on blkhost's stream: the script states' fields by name and type (a string as length and bytes, an array as count and items, the subsection)" \
    raw "cat b.expected" -f b.mig
# C states (BhVmsd): the trailer types their fields as QEMU does.
"$HELPER" write c.mig running >/dev/null
analyze "analyze-migration.py on a BhVmsd stream: typed fields (timer's int64 cpu_clock_offset, globalstate's runstate)" \
    raw "printf '%s\n' '{' '    \"timer (0)\": {' '        \"cpu_ticks_offset\": \"0x000000000012d687\",' '        \"unused\": \"00 00 00 00 00 00 00 00\",' '        \"cpu_clock_offset\": \"0xffffffffffffffd6 (-42)\"' '    },' '    \"globalstate (1)\": {' '        \"size\": \"0x00000008\",' \"        \\\"runstate\\\": \\\"72 75 6e 6e 69 6e 67\$(printf ' 00%.0s' \$(seq 93))\\\"\" '    }' '}'" \
    -f c.mig

check_fails "vmstate: --output=bogus is a usage error" \
    "--output must be human or json" "$B" vmstate --output=bogus b.qcow2 s1
qemu-img create -q -f raw raw.img 1M
check_fails "vmstate: an image without snapshots says so" \
    "^blkhost vmstate: Could not list the snapshots of 'raw.img': .*does not support internal snapshots" \
    "$B" vmstate raw.img s1
exit $((tap_failed > 0))
