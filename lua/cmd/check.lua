-- check: check an image's metadata for consistency (qemu-img check)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost check [-f FMT] [-r leaks|all] [--output=human|json] [-q] [-U] IMAGE
--
-- Exit status as qemu-img 7.2's: 0 no problem, 1 the check could not
-- run, 2 corruptions, 3 leaks only, 63 the format has no check.  The
-- counts, the statistics and the summary lines are qemu-img's; the lines
-- naming each problem go to stderr.  After a repair (-r) the image is
-- checked again and that second result is shown, as qemu-img does.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local json = require "blkhost.json"

local USAGE = [==[
Usage: blkhost check [-f FMT] [-r leaks|all] [--output=human|json] [-q] [-U] IMAGE

Check IMAGE's metadata (qcow2: refcounts against the tables, COPIED
flags) and print what qemu-img check prints.  Exit status: 0 clean,
1 the check could not run, 2 corruptions, 3 leaks only, 63 the format
has no check.

  -f FMT            the image's format (default: probe)
  --image-opts      IMAGE is an option string (driver=qcow2,file.filename=F)
  -r leaks|all      repair leaked clusters, or everything (qcow2: by
                    rebuilding the refcounts; -r leaks only when no
                    refcount is too low)
  --output=FMT      human (default) or json
  -q, --quiet       print nothing but errors
  -U, --force-share open an image another process is writing
  -h, --help        this text
]==]

-- The key order qemu-img 7.2 prints (its dictionary's order).
local JSON_KEYS = {
  "image-end-offset", "compressed-clusters", "total-clusters",
  "corruptions-fixed", "corruptions", "check-errors", "leaks", "leaks-fixed",
  "allocated-clusters", "filename", "format", "fragmented-clusters",
}

local function human(r, fixed, say)
  if fixed then
    say("The following inconsistencies were found and repaired:\n")
    say(string.format("    %d leaked clusters", r.leaks_fixed))
    say(string.format("    %d corruptions\n", r.corruptions_fixed))
    say("Double checking the fixed image now...")
  end
  if r.corruptions == 0 and r.leaks == 0 and r.check_errors == 0 then
    say("No errors were found on the image.")
  else
    if r.corruptions > 0 then
      say(string.format("\n%d errors were found on the image.\n" ..
                        "Data may be corrupted, or further writes to the image may corrupt it.",
                        r.corruptions))
    end
    if r.leaks > 0 then
      say(string.format("\n%d leaked clusters were found on the image.\n" ..
                        "This means waste of disk space, but no harm to data.", r.leaks))
    end
    if r.check_errors > 0 then
      say(string.format("\n%d internal errors have occurred during the check.", r.check_errors))
    end
  end
  if r.total_clusters and r.total_clusters > 0 and r.allocated_clusters > 0 then
    local function pct(n) return n * 100.0 / r.allocated_clusters end
    say(string.format("%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters",
                      r.allocated_clusters, r.total_clusters,
                      r.allocated_clusters * 100.0 / r.total_clusters,
                      pct(r.fragmented_clusters), pct(r.compressed_clusters)))
  end
  if r.image_end_offset then
    say(string.format("Image end offset: %d", r.image_end_offset))
  end
end

local function as_json(r, filename, format)
  local t = {
    filename = filename, format = format,
    ["check-errors"] = r.check_errors,
    ["image-end-offset"] = r.image_end_offset,
    ["total-clusters"] = r.total_clusters,
  }
  -- The statistics only when something is allocated, and each only when
  -- it is not zero, as qemu-img.
  if r.total_clusters and r.total_clusters > 0 and r.allocated_clusters > 0 then
    t["allocated-clusters"] = r.allocated_clusters
    if r.fragmented_clusters > 0 then
      t["fragmented-clusters"] = r.fragmented_clusters
    end
    if r.compressed_clusters > 0 then
      t["compressed-clusters"] = r.compressed_clusters
    end
  end
  -- qemu-img leaves out the counts that are zero.
  for _, k in ipairs({ "corruptions", "leaks", "corruptions_fixed", "leaks_fixed" }) do
    if r[k] > 0 then t[(k:gsub("_", "-"))] = r[k] end
  end
  local keys = {}
  for _, k in ipairs(JSON_KEYS) do
    if t[k] ~= nil then keys[#keys + 1] = k end
  end
  return json.encode(json.object(t, keys), { indent = 4 })
end

return cli.run("check", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "r", "repair", arg = "leaks|all" },
    { nil, "output", arg = "FMT" },
    { "q", "quiet" },
    { "U", "force-share" },
  })
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.fail("--output must be used with human or json as argument.")
  end
  local fix = o.repair
  if fix and fix ~= "leaks" and fix ~= "all" then
    cli.fail("Unknown option value for -r (expecting 'leaks' or 'all'): " .. fix)
  end
  if fix and o["force-share"] then
    cli.fail("--force-share/-U is not allowed when repairing an image")
  end
  if #rest == 0 then cli.usage_error("no image given") end
  if #rest > 1 then cli.usage_error("one image at a time, got " .. #rest) end

  local opts = { format = o.format, readonly = not fix }
  if o["force-share"] then opts.locking = false end
  local ok, img = pcall(imageopts.open, rest[1], opts, o["image-opts"])
  if not ok then
    io.stderr:write("blkhost check: Could not open '", rest[1], "': ", tostring(img), "\n")
    return 1
  end
  local _ <close> = img

  local ok2, r = pcall(img.check, img, fix)
  if not ok2 then
    io.stderr:write("blkhost check: ", tostring(r), "\n")
    return tostring(r):find("does not support checks", 1, true) and 63 or 1
  end
  for _, m in ipairs(r.messages) do io.stderr:write(m, "\n") end
  local fixed = r.leaks_fixed > 0 or r.corruptions_fixed > 0
  if fixed then
    -- What the repair left, as the summary and the exit status tell.
    local again = img:check()
    for _, m in ipairs(again.messages) do io.stderr:write(m, "\n") end
    again.leaks_fixed, again.corruptions_fixed = r.leaks_fixed, r.corruptions_fixed
    r = again
  end

  if output == "json" then
    io.stdout:write(as_json(r, rest[1], img:format()), "\n")
  elseif not o.quiet then
    human(r, fixed, print)
  end
  if r.check_errors > 0 then return 1 end
  if r.corruptions > 0 then return 2 end
  if r.leaks > 0 then return 3 end
  return 0
end)
