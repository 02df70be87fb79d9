"""`pitwall bench report`: import a real GR Cup race into a fresh archive and render its whole-field
post-race PDF, each three times; reports the medians.

Keys: seconds (whole-field report, median of 3: archive read, analysis, figures through one
browser, PDF), pages, figures, seconds_per_figure (browser time of the median run, its start
included, per figure), import_seconds (median of 3 imports of the race), the median run's
compose / render / pdf seconds (the browser starts during compose), and the load average
(the machine is 2 shared cores: wall times grow with other work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str]) -> dict:
    """Run the benchmark; returns the JSON-able result."""
    from engine.archive.importer import import_grcup
    from engine.archive.store import Archive
    from engine.report.build import build_report
    from engine.settings import REPO_ROOT, Settings

    p = argparse.ArgumentParser(prog="pitwall bench report")
    p.add_argument("--track", default="barber")
    p.add_argument("--race", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    folder = REPO_ROOT / "data" / "grcup" / args.track
    with tempfile.TemporaryDirectory(prefix="pw-bench-report-") as tmp:
        archive = Archive(Path(tmp) / "archive")
        imports = [import_grcup(folder, args.race, archive, Settings.from_env().models_dir)
                   for _ in range(args.runs)]
        session = imports[0]["session"]
        runs = []
        for i in range(args.runs):
            runs.append(build_report(archive, session, Path(tmp) / f"report-{i}.pdf"))
            print(f"bench report: run {i + 1}: {runs[-1]['seconds']} s, {runs[-1]['pages']} pages",
                  file=sys.stderr, flush=True)
    med = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {"session": session, "seconds": med["seconds"], "pages": med["pages"], "figures": med["figures"],
            "seconds_per_figure": round(med["render_seconds"] / max(med["figures"], 1), 3),
            "import_seconds": statistics.median(r["seconds"] for r in imports),
            "import_cpu_seconds": statistics.median(r["cpu_seconds"] for r in imports),
            "runs_seconds": [r["seconds"] for r in runs], "cars": med["cars"],
            "compose_seconds": med["compose_seconds"], "render_seconds": med["render_seconds"],
            "pdf_seconds": med["pdf_seconds"],
            "load_average_1m": round(os.getloadavg()[0], 2)}
