"""`pitwall import`, `pitwall report`, `pitwall export`: the session archive from the command line.

Each prints a clear error naming what and why and exits 1 on bad input; with --json the last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.archive.store import Archive, ArchiveError


def _archive(args) -> Archive:
    from engine.settings import Settings

    settings = Settings.from_env()
    return Archive(Path(args.archive)) if getattr(args, "archive", None) else Archive.from_settings(settings)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archive", default=None, help="archive folder (default: PITWALL_DATA_DIR/archive)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _finish(args, summary: dict, text: str) -> int:
    print(json.dumps(summary) if args.json else text, flush=True)
    return 0


def _fail(what: str, exc: Exception) -> int:
    print(f"pitwall {what}: {exc}", file=sys.stderr, flush=True)
    return 1


def configure_import(p: argparse.ArgumentParser) -> None:
    """Arguments of `pitwall import`: which race or capture goes into the archive."""
    p.add_argument("path", type=Path, help="a GR Cup race or track folder, or an F1 UDP capture (.bin.gz)")
    p.add_argument("--race", type=int, default=None, help="race number when the folder holds two races")
    p.add_argument("--session", default=None, help="session id for an F1 capture (default: from the file name)")
    _common(p)


def run_import(args: argparse.Namespace) -> int:
    """Archive one race from disk so the engineers can review it after the chequered flag."""
    from engine.settings import Settings

    try:
        if args.path.is_file() and args.path.name.endswith((".bin.gz", ".bin")):
            from engine.archive.f1import import import_f1
            summary = import_f1(args.path, _archive(args), args.session)
        else:
            from engine.archive.importer import import_grcup
            summary = import_grcup(args.path, args.race, _archive(args), Settings.from_env().models_dir)
    except (ArchiveError, ValueError, OSError) as exc:
        return _fail("import", exc)
    return _finish(args, summary, f"archived {summary['session']} in {summary['seconds']} s: {summary['archive']}")


def configure_report(p: argparse.ArgumentParser) -> None:
    """Arguments of `pitwall report`: which archived session and cars go in the PDF."""
    p.add_argument("session", help="an archived session id (see `pitwall report --list`)")
    p.add_argument("--car", action="append", default=None, help="only this car (repeatable; default: the whole field)")
    p.add_argument("--out", type=Path, default=None, help="PDF file (default: <session>.pdf)")
    p.add_argument("--gap-to", default=None, metavar="CAR", help="gap chart against this car (default: the leader)")
    _common(p)


def run_report(args: argparse.Namespace) -> int:
    """Write the post-race PDF debrief for one archived session."""
    from engine.report.build import build_report
    from engine.report.render import RenderError

    out = args.out or Path(f"{args.session}.pdf")
    try:
        summary = build_report(_archive(args), args.session, out, args.car, args.gap_to)
    except (ArchiveError, RenderError) as exc:
        return _fail("report", exc)
    return _finish(args, summary, f"wrote {summary['out']}: {summary['pages']} pages, {summary['figures']} figures "
                                  f"in {summary['seconds']} s")


def configure_export(p: argparse.ArgumentParser) -> None:
    """Arguments of `pitwall export`: which session, cars and file format."""
    from engine.archive.export import FORMATS

    p.add_argument("session", help="an archived session id")
    p.add_argument("--format", choices=FORMATS, default="csv", help="file format (default csv)")
    p.add_argument("--out", type=Path, required=True, help="folder; files go to OUT/<session>/<table>/car-<N>.<format>")
    p.add_argument("--car", action="append", default=None, help="only this car (repeatable)")
    _common(p)


def run_export(args: argparse.Namespace) -> int:
    """Export an archived session's laps and calls for the engineers' own tools."""
    from engine.archive.export import export_session

    try:
        summary = export_session(_archive(args), args.session, args.format, args.out, args.car)
    except ArchiveError as exc:
        return _fail("export", exc)
    return _finish(args, summary, f"exported {summary['files']} files to {summary['out']}")
