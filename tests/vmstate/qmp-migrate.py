#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Drive a `qemu-system-x86_64 -machine none` over QMP for qemu-interop.sh.

  qmp-migrate.py save FILE   migrate a stopped (-S) VM into FILE
  qmp-migrate.py load FILE   start a VM with -incoming from FILE; print the
                             migration status and the VM's run state

Polls query-migrate until the migration ends, so timing never matters.
"""
import json
import subprocess
import sys
import time


def main():
    mode, path = sys.argv[1], sys.argv[2]
    args = ["qemu-system-x86_64", "-machine", "none", "-nodefaults",
            "-display", "none", "-qmp", "stdio"]
    if mode == "save":
        args += ["-S"]
    else:
        args += ["-incoming", "exec:cat " + path]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)

    def gone():
        # QEMU exits by itself when an incoming migration fails.
        p.wait()
        err = p.stderr.read().strip().replace("\n", " | ")
        print("migration=exited runstate=none")
        print("stderr: " + err)
        sys.exit(0)

    def cmd(name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        try:
            p.stdin.write(json.dumps(msg) + "\n")
            p.stdin.flush()
        except BrokenPipeError:
            gone()
        while True:
            line = p.stdout.readline()
            if not line:
                gone()
            reply = json.loads(line)
            if "return" in reply or "error" in reply:
                return reply

    json.loads(p.stdout.readline())  # greeting
    cmd("qmp_capabilities")
    if mode == "save":
        cmd("migrate", uri="exec:cat > " + path)
    status = None
    deadline = time.time() + 60
    while time.time() < deadline:
        status = cmd("query-migrate")["return"].get("status")
        if status in ("completed", "failed"):
            break
        time.sleep(0.05)
    run = cmd("query-status")["return"]["status"]
    cmd("quit")
    p.stdin.close()
    err = p.stderr.read()
    p.wait()
    print("migration=%s runstate=%s" % (status, run))
    if err.strip():
        print("stderr: " + err.strip().replace("\n", " | "))


main()
