"""`pitwall replay PATH`: replay a recorded GR Cup race into PitWall's Redis at N x speed."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a GR Cup track folder (with --race) or a 23_AnalysisEnduranceWithSections file")
    p.add_argument("--race", type=int, default=1, help="race number in a track folder (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--speed", type=float, default=10.0, help="replay factor against real time (default 10)")
    g.add_argument("--max", action="store_true", help="as fast as possible")
    p.add_argument("--no-telemetry", action="store_true", help="lap timing only")
    p.add_argument("--fresh", action="store_true", help="forget the session's live state first (replay it anew)")


def resolve(path: str, race: int):
    """The RaceFiles for a folder + race number, or for an analysis file's own race."""
    from pathlib import Path

    from engine import grcup

    target = Path(path)
    if target.is_file():
        for rf in grcup.discover(target.parent.parent if target.parent.name.lower().startswith("race") else target.parent):
            if rf.analysis.resolve() == target.resolve():
                return rf
        raise SystemExit(f"{path}: not a GR Cup analysis file inside a track folder")
    if not target.is_dir():
        raise SystemExit(f"{path}: no such file or folder")
    races = grcup.discover(target)
    tracks = {r.track for r in races}
    if len(tracks) != 1:
        raise SystemExit(f"{path}: expected one track's folder, found {sorted(tracks) or 'no races'}")
    return grcup.find_race(target, tracks.pop(), race)


def forget_session(client, session: str) -> int:
    """Delete a session's live keys (timing, insights, laps, checkpoints) so a replay starts clean."""
    from engine import keys

    doomed = list(client.scan_iter(match=f"{keys.PREFIX}:session:{session}:*", count=1000))
    if doomed:
        client.delete(*doomed)
    return len(doomed)


def run(args: argparse.Namespace) -> int:
    from engine.ingest.writer import StreamWriter
    from engine.redisserver import connect
    from engine.replay.grcup import load_race
    from engine.replay.player import play
    from engine.settings import Settings

    settings = Settings.from_env()
    if not settings.redis_url:
        raise SystemExit("pitwall replay needs PITWALL_REDIS_URL (or run `pitwall up`, which owns a Redis)")
    files = resolve(args.path, args.race)
    tl = load_race(files, with_telemetry=not args.no_telemetry)
    client = connect(settings.redis_url)
    if args.fresh:
        forget_session(client, tl.session)
    result = play(tl, client, StreamWriter(client, settings.shards, settings.stream_maxlen),
                  speed=None if args.max else args.speed)
    print(f"replayed {result['session']}: {result['crossings']} crossings, {result['points']} points "
          f"in {result['seconds']:.1f} s")
    return 0
