"""`pitwall replay PATH`: replay a recorded session into PitWall at N x speed.

PATH is a GR Cup track folder (with --race), a GR Cup lap/section analysis file, a GR Cup telemetry
file (long or wide layout: its race is replayed with it), or an F1 UDP capture (.bin / .bin.gz).
`--to` sends the telemetry straight to the stream (default), as PitWall binary datagrams over UDP
(udp://HOST:PORT, F1 captures as raw F1 packets) or as JSON batches over HTTP (http://HOST:PORT).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

    from engine.sources.grcup import RaceFiles


def configure(p: argparse.ArgumentParser) -> None:
    """The `pitwall replay` options."""
    p.add_argument("path", help="a GR Cup track folder (with --race), an analysis or telemetry file, or an F1 UDP capture")
    p.add_argument("--race", type=int, default=1, help="race number in a track folder (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--speed", type=float, default=10.0, help="replay factor against real time (default 10)")
    g.add_argument("--max", action="store_true", help="as fast as possible")
    p.add_argument("--no-telemetry", action="store_true", help="lap timing only")
    p.add_argument("--fresh", action="store_true", help="forget the session's live state first (replay it anew)")
    p.add_argument("--to", default="stream",
                   help="stream (default), udp://HOST:PORT (PitWall datagrams; raw F1 packets) or http://HOST:PORT")


def resolve(path: str, race: int) -> RaceFiles:
    """The RaceFiles for a folder + race number, or for an analysis file's own race."""
    from engine.sources import grcup

    target = Path(path)
    if target.is_file() and "telemetry" in target.name.lower():
        return telemetry_race(target)
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


def telemetry_race(path: Path) -> RaceFiles:
    """The RaceFiles of the race a GR Cup telemetry file belongs to, with that file as its telemetry."""
    from dataclasses import replace

    from engine.sources import grcup

    folder = path.parent.parent if path.parent.name.lower() == "samples" else path.parent
    for rf in grcup.discover(folder):
        if path.resolve() in {p.resolve() for p in (rf.telemetry_wide, rf.telemetry_long) if p is not None}:
            wide = path.resolve() == (rf.telemetry_wide.resolve() if rf.telemetry_wide else None)
            return replace(rf, telemetry_wide=path if wide else None, telemetry_long=None if wide else path)
    raise SystemExit(f"{path}: a telemetry file outside any GR Cup race folder")


def forget_session(client: redis.Redis, session: str) -> int:
    """Delete a session's live keys (timing, insights, laps, checkpoints) so a replay starts clean;
    a running engine drops what it holds of the session (engine.stages.resets)."""
    from engine import keys
    from engine.stages.resets import mark_reset

    mark_reset(client, session)

    doomed = [k for pattern in keys.session_patterns(session) for k in client.scan_iter(match=pattern, count=1000)]
    if doomed:
        client.delete(*doomed)
    return len(doomed)


def run(args: argparse.Namespace) -> int:
    """Replay the recorded session to the chosen target (`--to`); returns the exit status."""
    from engine.redisserver import connect
    from engine.replay.f1 import play_f1
    from engine.sources.f1capture import is_f1_dump
    from engine.replay.sinks import open_sink
    from engine.settings import Settings

    settings = Settings.from_env()
    if not settings.redis_url and args.to == "stream":
        raise SystemExit("pitwall replay needs PITWALL_REDIS_URL (or run `pitwall up`, which owns a Redis), "
                         "or --to udp://HOST:PORT / http://HOST:PORT")
    client = connect(settings.redis_url) if settings.redis_url else None
    try:
        sink = open_sink(args.to, client, settings.shards, settings.stream_maxlen)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    speed = None if args.max else args.speed
    if is_f1_dump(args.path):
        result = play_f1(args.path, sink, speed=speed, client=client)
        print(f"replayed F1 capture {args.path}: {result['packets']} packets, {result['points']} points "
              f"({result['invalid']} invalid, {result['errors']} undecodable) in {result['seconds']:.1f} s; "
              f"{result['skipped']} records of other traffic skipped")
        return 0
    import json

    from engine import keys
    from engine.replay.timeline import load_race
    from engine.sources.grcup import race_track
    from engine.replay.player import play

    files = resolve(args.path, args.race)
    tl = load_race(files, with_telemetry=not args.no_telemetry)
    if args.fresh and client is not None:
        forget_session(client, tl.session)
    facts = race_track(files, telemetry=tl.telemetry if len(tl.telemetry) else None)
    if client is not None:     # the session carries its track's facts (estimated ones too)
        client.hset(keys.session_meta(tl.session), "track_facts", json.dumps(facts.as_dict()))
    if facts.estimated:
        print(f"{tl.track} (not in the tracks file): {facts.describe_estimates()}")
    result = play(tl, client, sink, speed=speed)
    print(f"replayed {result['session']}: {result['crossings']} crossings, {result['points']} points "
          f"in {result['seconds']:.1f} s")
    return 0
