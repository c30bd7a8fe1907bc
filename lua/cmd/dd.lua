-- dd: copy a range of an image into a new image (qemu-img dd)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost dd [-f FMT] [-O FMT] [-U] [-p] [-q] [bs=N] [count=N] [skip=N] if=INPUT of=OUTPUT
--
-- As qemu-img 7.2 dd: OUTPUT (format -O, default raw) is created, and
-- INPUT's bytes from skip*bs up to count*bs (or its end) are copied into
-- it from offset 0.  Like qemu-img, count counts from the start of INPUT,
-- not from skip: count=10 skip=3 copies blocks 3 to 9.  A skip past the
-- end makes an empty OUTPUT after a warning.  Unlike qemu-img, areas
-- reading as zeros are not written (OUTPUT is new and reads as zeros),
-- and OUTPUT may not be INPUT nor a file of its backing chain (qemu-img
-- would empty the file it is about to read).

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local chain = require "blkhost.chain"
local progress = require "blkhost.progress"

local USAGE = [==[
Usage: blkhost dd [-f FMT] [-O FMT] [-U] [-p] [-q] [bs=N] [count=N] [skip=N]
                  if=INPUT of=OUTPUT

Create OUTPUT and copy INPUT into it, as qemu-img dd does: from block
skip (of bs bytes) up to block count, counted from INPUT's start (qemu-
img's rule), or to INPUT's end.  Sizes take k, M, G, T, P, E suffixes.

  if=INPUT        the image read (any bh.open name)
  of=OUTPUT       the image made (replaced if it exists)
  bs=N            block size (default 512)
  count=N         copy up to block N of INPUT
  skip=N          start at block N of INPUT
  -f FMT          INPUT's format (default: probe)
  --image-opts    INPUT is an option string (driver=qcow2,file.filename=F)
  -O FMT          OUTPUT's format (default raw)
  -U              open INPUT even if another process writes it
  -p              print progress ("    (NN.NN/100%)")
  -q              quiet
  -h, --help      this text
]==]

local INT_MAX = 2147483647
local SIZE_HINT = " You may use k, M, G, T, P or E suffixes for\n" ..
  "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."

local function number(key, v)
  local ok, n = pcall(bh.parse_size, v)
  if not ok or not math.tointeger(n) or v:sub(1, 1) == "-" then
    cli.fail("Invalid " .. key .. " specified." .. SIZE_HINT)
  end
  return n
end

-- Copy [from, to) of input to output at 0, leaving out areas that read
-- as zeros (output is new), with bh.copy's requests in flight.
local function copy(input, output, from, to, p)
  local done = 0
  bh.copy(input, output, { offset = from, length = to - from, target_offset = 0,
                           zero_init = true, progress = function(n)
    done = done + n
    if done < to - from then p:set(done / (to - from) * 100) end
  end })
  output:flush()
end

return cli.run("dd", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "O", "output-format", arg = "FMT" },
    { "U", "force-share" },
    { "p", "progress" },
  })
  local dd = {}
  for _, a in ipairs(rest) do
    local k, v = a:match("^([^=]*)=(.*)$")
    if not (k == "bs" or k == "count" or k == "skip" or k == "if" or k == "of") then
      cli.fail("unrecognized operand " .. (k or a))
    end
    dd[k] = v
  end
  local bs = 512
  if dd.bs then
    bs = number("bs", dd.bs)
    if bs < 1 or bs > INT_MAX then
      cli.fail("Invalid bs specified. Must be between 1 and " .. INT_MAX .. ".")
    end
  end
  local count = dd.count and number("count", dd.count)
  local skip = dd.skip and number("skip", dd.skip) or 0
  if not dd["if"] or not dd.of then cli.fail("Must specify both input and output files") end
  local format = o["output-format"] or "raw"
  if not chain.is_format(format) then cli.fail("Unknown file format '" .. format .. "'") end

  local iok, input = pcall(imageopts.open, dd["if"], { format = o.format, readonly = true,
                                                       locking = not o["force-share"] },
                         o["image-opts"])
  if not iok then cli.fail(string.format("Could not open '%s': %s", dd["if"], input)) end
  local out_real = chain.realpath(dd.of)
  if out_real then
    for _, f in ipairs(chain.files(input, dd["if"])) do
      if f == out_real then
        input:close()
        cli.fail(string.format("output '%s' is read as input '%s': it would be " ..
                               "emptied before it is read", dd.of, dd["if"]))
      end
    end
  end

  -- qemu-img's arithmetic: count bounds the end, skip moves the start.
  local size = input:size()
  if count and count <= math.maxinteger // bs and size > count * bs then size = count * bs end
  local from = skip * bs
  local past = skip > math.maxinteger // bs or size < from
  if past then
    io.stderr:write(string.format("blkhost dd: %s: cannot skip to specified offset\n", dd["if"]))
    from = size
  end

  local ok, err = pcall(bh.create_check, dd.of, { format = format, size = size - from })
  if not ok then
    input:close()
    cli.fail(tostring(err))
  end
  local existed = chain.realpath(dd.of) ~= nil
  local output
  ok, err = pcall(function()
    bh.create(dd.of, { format = format, size = size - from })
    output = bh.open(dd.of, { format = format })
    local p = progress.new{ enabled = o.progress and not o.quiet or false, min_skip = 1 }
    copy(input, output, from, size, p)
    p:set(100)
    p:finish()
  end)
  if output then output:close() end
  input:close()
  if not ok then
    if not existed then os.remove(dd.of) end
    error(err, 0)
  end
  return 0
end)
