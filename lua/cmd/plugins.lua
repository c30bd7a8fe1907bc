-- SPDX-License-Identifier: BSD-3-Clause
-- plugins: list the driver and frontend plugins, and files that were refused
--
-- blkhost plugins [--output=human|json]
-- Refused files are listed under "refused:" with the loader's reason; they
-- do not change the exit status (0), since the rest still works.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local json = require "blkhost.json"

local USAGE = [[
Usage: blkhost plugins [--output=human|json]

List the plugins blkhost loaded (drivers and frontends, with version,
file and description) and every file it refused, with the reason.
The search path is BLKHOST_PLUGIN_PATH, then the built-in directories.

  --output=FMT   human (default) or json
  -q, --quiet    accepted (the output is the result)
  -h, --help     this text
]]

local function pad(s, n)
  s = s or ""
  return s .. string.rep(" ", math.max(0, n - #s))
end

return cli.run("plugins", USAGE, function(args)
  local o, rest = cli.parse(args, { { nil, "output", arg = "FMT" } })
  if #rest > 0 then cli.usage_error("unexpected argument '" .. rest[1] .. "'") end
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.usage_error("--output must be human or json, not '" .. output .. "'")
  end

  local loaded, refused = {}, {}
  for _, p in ipairs(bh.plugins()) do
    table.insert(p.error and refused or loaded, p)
  end

  if output == "json" then
    local keys = { "name", "kind", "version", "path", "description",
                   "thread_model", "abi", "error" }
    local list = {}
    for _, p in ipairs(loaded) do list[#list + 1] = json.object(p, keys) end
    for _, p in ipairs(refused) do list[#list + 1] = json.object(p, keys) end
    local doc = json.object({
      plugins = json.array(list),
      ["search-path"] = json.array(bh.plugin.search_path()),
    }, { "plugins", "search-path" })
    print(json.encode(doc, { indent = 4 }))
    return 0
  end

  local w = { name = 4, version = 7 }
  for _, p in ipairs(loaded) do
    for k in pairs(w) do w[k] = math.max(w[k], #(p[k] or "")) end
  end
  for _, kind in ipairs({ "driver", "frontend" }) do
    local any = false
    for _, p in ipairs(loaded) do
      if p.kind == kind then
        if not any then
          print(kind .. "s:")
          any = true
        end
        print(string.format("  %s  %s  %s  %s", pad(p.name, w.name),
                            pad(p.version, w.version), p.description or "",
                            "(" .. (p.path or "?") .. ")"))
      end
    end
    if not any then print(kind .. "s: none") end
  end
  if #refused > 0 then
    print("refused:")
    for _, p in ipairs(refused) do
      print(string.format("  %s: %s", p.path or p.name or "?", p.error))
    end
  end
  return 0
end)
