-- fuse: show a disk image as one regular file through FUSE
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost fuse [OPTIONS] IMAGE MOUNTPOINT
--
-- What `qemu-storage-daemon --blockdev ... --export type=fuse,
-- mountpoint=FILE` does, in one command: IMAGE (any format) is opened and
-- its guest-visible contents appear as the regular file MOUNTPOINT until
-- SIGINT or SIGTERM, which unmount it.  MOUNTPOINT must exist: a regular
-- file (covered by the export) or a directory (the export appears in it
-- as NAME).  Written with the public API: bh.open, bh.fuse.export,
-- bh.process.

local bh = require "blkhost"
local cli = require "blkhost.cli"

local USAGE = [==[
Usage: blkhost fuse [OPTIONS] IMAGE MOUNTPOINT

Show IMAGE's contents as the regular file MOUNTPOINT (FUSE) until SIGINT
or SIGTERM.  MOUNTPOINT must exist: a regular file, which the export
covers, or a directory, in which the export appears as one file.

  -f, --format=FMT       the image's format (default: probe)
  -r, --read-only        refuse writes (EROFS)
      --allow-other      let other users open the file (FUSE allow_other)
      --discard=MODE     unmap (default: fallocate --punch-hole frees
                         space in the image) or ignore (zeros are written)
      --cache=MODE       writeback (default), none, writethrough,
                         directsync or unsafe, as with qemu
      --name=NAME        the file's name under a directory (default disk)
      --threads=N        request threads (default: one per CPU, 2 to 16;
                         1 for formats that serialize requests)
      --fork             go to the background once mounted
      --pid-file=PATH    write the pid to PATH (removed at exit)
  -v, --verbose          say what is served, and when it stops
  -h, --help             this text
]==]

return cli.run("fuse", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { "r", "read-only" },
    { nil, "allow-other" },
    { nil, "discard", arg = "MODE" },
    { nil, "cache", arg = "MODE" },
    { nil, "name", arg = "NAME" },
    { nil, "threads", arg = "N" },
    { nil, "fork" },
    { nil, "pid-file", arg = "PATH" },
    { "v", "verbose" },
  })
  if #rest ~= 2 then cli.usage_error("Expecting an image and a mount point") end
  local image, mountpoint = rest[1], rest[2]
  local discard = o.discard or "unmap"
  if discard ~= "unmap" and discard ~= "ignore" then
    cli.fail("Invalid discard mode '" .. discard .. "' (expected unmap or ignore)")
  end
  local threads
  if o.threads then
    threads = math.tointeger(tonumber(o.threads))
    if not threads or threads < 1 then
      cli.fail("Invalid thread count '" .. o.threads .. "'")
    end
  end

  -- In the background before anything starts threads; errors from here
  -- on reach the waiting parent.
  if o.fork then bh.process.daemonize() end
  local img <close> = bh.open(image, { format = o.format, readonly = o["read-only"] or false,
                                       discard = discard, cache = o.cache })
  local exp <close> = bh.fuse.export(img, mountpoint, {
    readonly = o["read-only"] or false,
    allow_other = o["allow-other"] or false,
    name = o.name,
    threads = threads,
  })
  if o.verbose then
    io.stderr:write(string.format("blkhost fuse: serving %s (%s, %s) at %s\n", image,
                                  img:format(), o["read-only"] and "read-only" or "read-write",
                                  exp:uri()))
  end
  if o["pid-file"] then bh.process.write_pid_file(o["pid-file"]) end
  if o.fork then bh.process.ready { keep_stderr = o.verbose or false } end

  local sig = bh.loop()
  exp:close()
  if o.verbose then
    io.stderr:write(string.format("blkhost fuse: %s unmounted%s\n", mountpoint,
                                  sig ~= 0 and " (signal " .. sig .. ")" or ""))
  end
  return 0
end)
