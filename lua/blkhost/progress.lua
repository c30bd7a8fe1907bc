-- SPDX-License-Identifier: BSD-3-Clause
-- Progress lines as qemu-img -p prints them: "    (NN.NN/100%)" ended by
-- "\r", so that a terminal shows one line updated in place, and a final
-- "\n".  A line is printed only when the figure moved by more than
-- min_skip percent since the last one (and at 0 and 100), as qemu-img
-- does, so a copy of many small pieces does not flood the terminal.
--
--   local progress = require "blkhost.progress"
--   local p = progress.new{enabled = o.progress, min_skip = 1}
--   p:add(chunk / total_bytes * 100)    -- percent points more are done
--   p:set(100)                          -- all done
--   print("Images are identical.")      -- replaces the figure on a tty
--   p:finish()                          -- the final newline
--
-- A disabled one does nothing, so callers need no ifs.

local progress = {}
progress.__index = progress

-- opts: enabled (default true), min_skip (percent, default 1), out (a file,
-- default io.stdout).
function progress.new(opts)
  opts = opts or {}
  local p = setmetatable({
    enabled = opts.enabled == nil or opts.enabled == true,
    min_skip = opts.min_skip or 1,
    out = opts.out or io.stdout,
    current = 0,
    last = 0,
    ended = false,
  }, progress)
  p:show()
  return p
end

function progress:show()
  if not self.enabled then return end
  self.out:write(string.format("    (%3.2f/100%%)\r", self.current))
  self.out:flush()
end

-- Set the figure (0..100), printing it if it moved far enough.
function progress:set(percent)
  if percent > 100 then percent = 100 end
  self.current = percent
  if percent > self.last + self.min_skip or percent < self.last - self.min_skip or
     percent == 0 or percent == 100 then
    self.last = percent
    self:show()
  end
end

-- Advance by delta percent points.
function progress:add(delta)
  self:set(self.current + delta)
end

-- End the progress line (qemu-img prints only the newline: a message
-- printed before it, after the "\r", replaces the figure on a terminal).
-- Safe to call twice.
function progress:finish()
  if self.ended then return end
  self.ended = true
  if self.enabled then
    self.out:write("\n")
    self.out:flush()
  end
end

return progress
