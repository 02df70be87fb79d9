"""Post-race downloads for the web server (the Reports page and the REST API share them): a PDF
built by `pitwall report` in a child process (it starts a browser to draw the figures, so the web
workers only wait for it), and a session's tables zipped as `pitwall export` writes them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from engine.archive.store import Archive, ArchiveError
from engine.settings import REPO_ROOT

REPORT_TIMEOUT_S = 180


class Failed(Exception):
    """A report or export that could not be made: the HTTP status, the field and the reason."""

    def __init__(self, status: int, field: str, reason: str):
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


def check_cars(archive: Archive, session: str, **cars: str | None) -> None:
    """Failed(404) naming the field when the session is not archived or a car (by field name) is not in it."""
    from engine.report.history import cars_of

    if session not in archive.sessions():
        raise Failed(404, "session", f"session {session[:64]!r} is not in the archive")
    try:
        field_cars = cars_of(archive, session)
    except ArchiveError as exc:           # a corrupt or partial laps table, named by the archive
        raise Failed(500, "session", str(exc)) from exc
    for name, car in cars.items():
        if car is not None and str(car) not in field_cars:
            raise Failed(404, name, f"car {str(car)[:64]!r} is not in session {session!r} (cars: {', '.join(field_cars)})")


def report_pdf(archive: Archive, session: str, cars: list[str] | None = None, gap_to: str | None = None) -> tuple[bytes, str, dict]:
    """The report's bytes, its file name and `pitwall report --json`'s summary; Failed when the
    child fails (its last error line) or runs past REPORT_TIMEOUT_S."""
    name = f"pitwall-{session}{'-cars-' + '-'.join(cars) if cars else ''}.pdf"
    with tempfile.TemporaryDirectory(prefix="pw-report-") as tmp:
        out = Path(tmp) / name
        argv = [sys.executable, "-m", "engine.cli", "report", session, "--out", str(out), "--json",
                "--archive", str(archive.root)]
        argv += [a for c in (cars or []) for a in ("--car", str(c))]
        argv += ["--gap-to", str(gap_to)] if gap_to else []
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=REPORT_TIMEOUT_S, cwd=REPO_ROOT)
        except subprocess.TimeoutExpired:
            raise Failed(504, "report", f"the report took longer than {REPORT_TIMEOUT_S} s and was stopped") from None
        if run.returncode != 0:
            raise Failed(500, "report", (run.stderr.strip().splitlines() or ["report failed"])[-1])
        return out.read_bytes(), name, json.loads(run.stdout.strip().splitlines()[-1])


def export_zip(archive: Archive, session: str, fmt: str, cars: list[str] | None = None) -> tuple[bytes, str, dict]:
    """The session's tables per car (engine.archive.export) zipped under <session>/, the zip's
    file name and the export's summary; ArchiveError as export_session raises it."""
    from engine.archive.export import export_session

    with tempfile.TemporaryDirectory(prefix="pw-export-") as tmp:
        got = export_session(archive, session, fmt, Path(tmp), cars or None)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(Path(got["out"]).rglob("*.*")):
                z.write(f, f"{session}/{f.relative_to(got['out'])}")
    return buf.getvalue(), f"pitwall-{session}-{fmt}.zip", got
