"""`pitwall export`: an archived session's tables per car as CSV or Parquet files in a folder."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd

from engine.archive.store import Archive, ArchiveError, replace_dir

EXPORT_TABLES = ("laps", "tyre", "strategy", "alerts", "telemetry")
FORMATS = ("csv", "parquet")


def export_session(archive: Archive, session: str, fmt: str, out: Path, cars: list[str] | None = None) -> dict:
    """Write <out>/<session>/<table>/car-<N>.<fmt> for every table and car; the folder appears whole
    (staged, then renamed; an older export of the session is replaced) or not at all."""
    if fmt not in FORMATS:
        raise ArchiveError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    archive.require(session)
    frames = {t: archive.read(session, t) for t in EXPORT_TABLES}
    known = set(frames["laps"].get("car", pd.Series(dtype=str)).astype(str))
    unknown = [c for c in (cars or []) if str(c) not in known]
    if unknown:
        raise ArchiveError(f"car {', '.join(unknown)} is not in session {session!r} (cars: {', '.join(sorted(known))})")
    out = Path(out)
    final = out / session
    stage = out / f".tmp-{session}-{os.getpid()}-{time.time_ns()}"
    files = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for table, df in frames.items():
            if df.empty or "car" not in df:
                continue
            for car, g in df.groupby("car", sort=True):
                if cars and car not in cars:
                    continue
                path = stage / table / f"car-{car}.{fmt}"
                path.parent.mkdir(parents=True, exist_ok=True)
                g = g.reset_index(drop=True)
                if fmt == "csv":
                    g.to_csv(path, index=False)
                else:
                    g.to_parquet(path, index=False)
                files.append(str(path.relative_to(stage)))
        stage.mkdir(parents=True, exist_ok=True)
        replace_dir(stage, final)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise ArchiveError(f"cannot export session {session!r} to {out}: {exc.strerror or exc}") from exc
    return {"session": session, "format": fmt, "out": str(final), "files": len(files),
            "tables": sorted({f.split("/")[0] for f in files})}
