#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# seek.py FILE [OFFSET...]: what lseek(SEEK_DATA) and lseek(SEEK_HOLE)
# answer on FILE, one line per OFFSET ("OFF data=N hole=N", ENXIO named),
# or without offsets the data extents found by walking the file with
# them ("data START END" lines).  The fuse tests compare its output for
# blkhost's export, qemu-storage-daemon's and the raw file itself.
import errno
import os
import sys


def seek(fd, off, whence):
    try:
        return str(os.lseek(fd, off, whence))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def main():
    fd = os.open(sys.argv[1], os.O_RDONLY)
    size = os.fstat(fd).st_size
    if len(sys.argv) > 2:
        for a in sys.argv[2:]:
            off = int(a, 0)
            print("%d data=%s hole=%s" % (off, seek(fd, off, os.SEEK_DATA),
                                          seek(fd, off, os.SEEK_HOLE)))
        return
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        print("data %d %d" % (start, end))
        pos = end


main()
