# SPDX-License-Identifier: BSD-3-Clause
# Helpers shared by the qcow2 test scripts; source it after tests/tap.sh.

# be IMG OFFSET BYTES: print a big-endian field of a file.
be() {
    /usr/bin/python3 -c 'import sys
f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); print(int.from_bytes(f.read(int(sys.argv[3])), "big"))' "$@"
}

# serve_nbd IMAGE: serve IMAGE with tests/qcow2/serve.lua on $T/nbd.sock;
# sets spid (the server, killed at exit) and uri (empty if it did not come
# up).  The log goes to $T/serve.log.
serve_nbd() {
    rm -f "$T/ready" "$T/nbd.sock"
    "$BLKHOST" run "$SOURCE_ROOT/tests/qcow2/serve.lua" "$T/nbd.sock" "$1" "$T/ready" \
        >"$T/serve.log" 2>&1 &
    spid=$!
    at_exit "kill $spid 2>/dev/null"
    for _ in $(seq 1 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
    uri=$(cat "$T/ready" 2>/dev/null)
}
