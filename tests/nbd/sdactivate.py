# SPDX-License-Identifier: BSD-3-Clause
# Minimal systemd-style socket activation for the tests: listen on a Unix
# socket, then exec the command with it as fd 3 and LISTEN_PID/LISTEN_FDS
# set for the exec'd process (same pid).
#   /usr/bin/python3 sdactivate.py SOCKET CMD ARGS...
import os
import socket
import sys

path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execvp(sys.argv[2], sys.argv[2:])
