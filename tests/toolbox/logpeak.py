# SPDX-License-Identifier: BSD-3-Clause
"""What a log filter's file (docs/filters.md, `log`) says about requests
in flight: each line is a request ending at its time stamp after
`elapsed` seconds.

    python3 logpeak.py LOG
prints "REQUESTS PEAK ORDER" (PEAK: most requests in flight at once;
ORDER: "ordered" if they started in increasing offset order, else
"unordered"), then the offsets, sorted, on one line.
"""
import re
import sys

LINE = re.compile(r'T(\d\d):(\d\d):([\d.]+)Z id=\d+ \w+ offset=(0x[0-9a-f]+)'
                  r'.* elapsed=([\d.]+)')
spans = []
for line in open(sys.argv[1]):
    h, m, s, off, elapsed = LINE.search(line).groups()
    end = int(h) * 3600 + int(m) * 60 + float(s)
    spans.append((end - float(elapsed), end, int(off, 16)))
spans.sort()
peak = max((sum(1 for a, b, _ in spans if a <= t < b) for t, _, _ in spans),
           default=0)
offsets = [o for _, _, o in spans]
print(len(spans), peak, "ordered" if offsets == sorted(offsets) else "unordered")
print(*sorted(offsets))
