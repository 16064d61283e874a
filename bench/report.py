"""The size of a run's report (gan_core.report) and what it is made of, and how long it takes to build.

    .venv/bin/python bench/report.py runs/RUN [--out /tmp/run.html]

Prints the run's length, its saved grids, the file's size split into plotly.js (inlined once), the time-lapse's
pictures (base64 PNGs, at most 200, and the final grid) and the rest (curves' data, tables, markup), and the build
time (wall clock, one build; the machine's load swings it).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core.folder.run_folder import RunFolder  # noqa: E402
from gan_core.report import write_report  # noqa: E402

PICTURE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
LIBRARY = re.compile(r"<script>/\*\*\s*\* plotly\.js v.*?</script>", re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default="/tmp/report-bench.html")
    args = parser.parse_args()
    folder = RunFolder.open(args.run_dir)
    started = time.perf_counter()
    out = write_report(folder.path, args.out)
    took = time.perf_counter() - started
    text = out.read_text()
    library = sum(len(m) for m in LIBRARY.findall(text))
    pictures = PICTURE.findall(LIBRARY.sub("", text))
    rows = sum(1 for _ in folder.metrics_path.open()) - 1
    size, shown = len(text.encode()), sum(map(len, pictures))
    print(f"run          {folder.name}: {rows:,} iterations recorded, {len(folder.grids()):,} grids saved")
    print(f"report       {size:,} bytes ({size / 2**20:.2f} MiB), built in {took:.1f} s")
    print(f"plotly.js    {library:,} bytes")
    print(f"pictures     {shown:,} bytes in {len(pictures)} data URIs (time-lapse + final grid)")
    print(f"the rest     {len(text) - library - shown:,} bytes (curves' data, tables, markup)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
