#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs one fuzz target; used by fuzz/meson.build (TAP) and ./dev.sh fuzz.
#   run.sh skip REASON                       TAP: the smoke test cannot run
#   run.sh replay NAME EXE DIR...            TAP: every file in DIRs, once
#                                            (FUZZ_REPLAY_TIMEOUT s each, 30)
#   run.sh smoke NAME EXE SEEDS              TAP: fuzz FUZZ_SECONDS (30)
#   run.sh fuzz NAME EXE SEEDS CORPUS SECS   fuzz, grow CORPUS, one stats line
# Crash inputs go to FUZZ_CRASH_DIR (fuzz/crashes) as NAME-crash-<sha1>.
set -u
mode=$1; shift

# Fuzz EXE for SECS seconds over CORPUS (written) and SEEDS (read only);
# sets execs, ncorp (corpus entries), crashes and rc.
fuzz_once() {
    local name=$1 exe=$2 seeds=$3 corpus=$4 secs=$5 log before
    local crash_dir=${FUZZ_CRASH_DIR:-$(dirname "$0")/crashes}
    mkdir -p "$crash_dir" "$corpus"
    # Inputs that crashed, leaked, hung or ran out of memory (libFuzzer also
    # keeps slow-unit-* files: slow is not a failure).
    count() { ls "$crash_dir" | grep -cE "^$name-(crash|leak|timeout|oom)-"; }
    before=$(count)
    log=$(mktemp)
    # control keeps one Lua state for the whole run, whose heap grows and
    # shrinks with the collector: libFuzzer would suspect every input of a
    # leak and scan the heap after it (eight times slower).  Its leaks are
    # found by LeakSanitizer's check at exit instead, which fails the run.
    # nbd-tls likewise: every input starts threads whose GnuTLS and ASan
    # state outlives the input, and the scan after each cost three
    # quarters of the run.
    local flags=()
    case $name in control|nbd-tls) flags+=(-detect_leaks=0) ;; esac
    # FUZZ_JOBS=N runs N processes (libFuzzer's fork mode, sharing the
    # corpus).  The nbd targets spend most of their time waiting for the
    # other end of a socket, so more jobs than cores still adds executions.
    local jobs=${FUZZ_JOBS:-1}
    [ "$jobs" -gt 1 ] && flags+=(-fork="$jobs")
    # FUZZ_FLAGS: more libFuzzer flags, e.g. -entropic=0 (see README.md).
    read -r -a extra <<< "${FUZZ_FLAGS:-}"
    flags+=("${extra[@]}")
    # One process by default: the machine is shared.  -timeout: every input runs in
    # milliseconds, so one that takes a minute (on a loaded machine too)
    # is a hang worth keeping; -rss_limit_mb bounds what an image's header
    # can make the drivers allocate.
    "$exe" -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crash_dir/$name-" "${flags[@]}" \
        "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    # Fork mode prints no final stats: its last "#N: cov:" line is the total.
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n1)
    ncorp=$(grep -o 'corp: [0-9]*' "$log" | tail -n1 | sed 's/corp: //')
    crashes=$(( $(count) - before ))
    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" \
            | head -n 20 | sed 's/^/# /'
        grep -q 'Test unit written' "$log" || tail -n 20 "$log" | sed 's/^/# /'
    fi
    rm -f "$log"
}

case "$mode" in
skip)
    echo "1..0 # SKIP $1"
    ;;
replay)
    name=$1 exe=$2; shift 2
    files=()
    for d in "$@"; do
        [ -d "$d" ] || continue
        while IFS= read -r f; do files+=("$f"); done \
            < <(find "$d" -type f ! -name '.*' ! -name '*.md' | sort)
    done
    if [ ${#files[@]} -eq 0 ]; then
        echo "1..0 # SKIP no inputs for $name"
        exit 0
    fi
    echo "1..${#files[@]}"
    n=0
    # An input runs in milliseconds; one that hangs (a deadlock) fails
    # here by name instead of running into meson's timeout.
    limit=${FUZZ_REPLAY_TIMEOUT:-30}
    for f in "${files[@]}"; do
        n=$((n + 1))
        out=$(timeout -k 5 "$limit" "$exe" "$f" 2>&1)
        rc=$?
        rel=${f#"${SOURCE_ROOT:-}/"}
        if [ $rc -eq 0 ]; then
            echo "ok $n - fuzz $name: $rel replays clean under the sanitizers"
        elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            echo "not ok $n - fuzz $name: $rel replays clean under the sanitizers (hung: killed after $limit s)"
        else
            echo "not ok $n - fuzz $name: $rel replays clean under the sanitizers (exit $rc)"
        fi
        if [ $rc -ne 0 ]; then
            printf '%s\n' "$out" | tail -n 30 | sed 's/^/# /'
        fi
    done
    ;;
smoke)
    name=$1 exe=$2 seeds=$3
    secs=${FUZZ_SECONDS:-30}
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "1..1"
    fuzz_once "$name" "$exe" "$seeds" "$work/corpus" "$secs"
    what="fuzz $name: ${secs} s from the seed corpus, ${execs:-?} executions, corpus ${ncorp:-?}"
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
        echo "ok 1 - $what, no crash"
    else
        echo "not ok 1 - $what, $crashes crash input(s) kept in fuzz/crashes (exit $rc)"
    fi
    ;;
fuzz)
    name=$1 exe=$2 seeds=$3 corpus_dir=$4 secs=$5
    fuzz_once "$name" "$exe" "$seeds" "$corpus_dir" "$secs"
    printf '%-11s %4s s  %10s executions  corpus %5s  crashes %s\n' \
        "$name" "$secs" "${execs:-?}" "${ncorp:-?}" "$crashes"
    [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
    ;;
*)
    sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
