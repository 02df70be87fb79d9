"""Plays a RaceTimeline into Redis at N x real time: crossings to the timing stream, telemetry
points through the ingest writer, in one merged time order."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import redis

from engine import keys
from engine.ingest.writer import StreamWriter
from engine.replay.timeline import RaceTimeline
from engine.stages.timing import publish_crossing

TELEMETRY_BATCH_S = 0.3   # race seconds of telemetry per write at 1x (the ingest batch window)


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def crossing_events(tl: RaceTimeline) -> list[tuple[float, dict]]:
    """(race time, crossing dict) for every car-lap."""
    cols = [c for c in tl.crossings.columns if c != "t"]
    rows = tl.crossings[["t", *cols]].to_numpy(dtype=object)
    return [(float(r[0]), {"session": tl.session, **{c: _clean(v) for c, v in zip(cols, r[1:])}})
            for r in rows]


def telemetry_points(tl: RaceTimeline) -> tuple[np.ndarray, list[dict]]:
    """(race times, canonical points) for the timeline's telemetry; NaN channels left out."""
    tel = tl.telemetry
    if tel.empty:
        return np.empty(0), []
    channels = [c for c in tel.columns if c not in ("t", "car")]
    t = tel["t"].to_numpy(float)
    cars = tel["car"].astype(str).to_numpy()
    values = tel[channels].to_numpy(float)
    points = []
    for i in range(len(tel)):
        p = {"session": tl.session, "vehicle_id": cars[i], "timestamp": tl.start_utc + t[i]}
        for j, ch in enumerate(channels):
            v = values[i, j]
            if v == v:   # not NaN
                p[ch] = float(v)
        points.append(p)
    return t, points


def publish_weather(client: redis.Redis, tl: RaceTimeline, now_t: float, wi: int) -> int:
    """Put the latest weather reading at race time now_t into the session meta (air_temp,
    track_temp in deg C; '' where the sensor is missing); returns the next reading's index.
    The replay publishes it once, at the start (the conditions the race starts in)."""
    w = tl.weather
    while wi + 1 < len(w) and w["t"].iat[wi + 1] <= now_t:
        wi += 1
    row = w.iloc[wi]
    client.hset(keys.session_meta(tl.session), mapping={
        c: ("" if pd.isna(row[c]) else float(row[c])) for c in ("air_temp", "track_temp")})
    return wi + 1


def play(tl: RaceTimeline, client: redis.Redis | None, writer: StreamWriter, speed: float | None = 10.0,
         stop: Callable[[], bool] = lambda: False, progress: bool = True,
         from_t: float = 0.0) -> dict:
    """Replay the timeline: crossings to the timing stream (when there is a client), telemetry to
    `writer` (a StreamWriter or a replay sink). speed=None plays as fast as possible. Returns counts."""
    if client is not None:   # None: telemetry only (a sink on another machine, no Redis here)
        client.sadd(keys.SESSIONS, tl.session)
        client.hdel(keys.session_meta(tl.session), "ended_at")
        client.hset(keys.session_meta(tl.session), mapping={
            "track": tl.track, "race": tl.race, "total_laps": tl.total_laps, "source": "replay",
            "start_utc": tl.start_utc, "replay_speed": speed or 0,
            "timing": "official"})   # crossings come from the organisers' timing, not from telemetry
        if tl.duration_s:            # a timed race: laps left come from this clock, not from total_laps
            client.hset(keys.session_meta(tl.session), mapping={
                "race_duration_s": tl.duration_s, "race_duration_source": tl.duration_source})
    crossings = crossing_events(tl)
    tel_t, tel_points = telemetry_points(tl)
    ci, ti = 0, int(np.searchsorted(tel_t, from_t))
    if client is not None and len(tl.weather):
        # Once, before any telemetry, the race's starting weather even when resuming at from_t: a
        # lap record must not depend on when a worker re-read the session meta, nor on where the
        # replay resumed (records are compared byte for byte across workers and restarts).
        publish_weather(client, tl, 0.0, 0)
    while ci < len(crossings) and crossings[ci][0] < from_t:
        ci += 1
    wall0 = time.monotonic()
    sent_laps = sent_points = 0
    last_report = 0.0
    lag = 0.0
    while (ci < len(crossings) or ti < len(tel_points)) and not stop():
        next_t = min(crossings[ci][0] if ci < len(crossings) else np.inf,
                     tel_t[ti] if ti < len(tel_points) else np.inf)
        if speed:
            wait = wall0 + (next_t - from_t) / speed - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.2))
                continue
            lag = -wait   # seconds behind the schedule (the writes of the previous step ran late)
            now_t = from_t + (time.monotonic() - wall0) * speed
        else:
            now_t = next_t + TELEMETRY_BATCH_S
        end = int(np.searchsorted(tel_t, now_t, side="right"))
        if end > ti:
            sent_points += writer.write(tel_points[ti:end])
            ti = end
        while ci < len(crossings) and crossings[ci][0] <= now_t:
            if client is not None:
                publish_crossing(client, crossings[ci][1])
            ci += 1
            sent_laps += 1
        if progress and time.monotonic() - last_report > 2.0:
            last_report = time.monotonic()
            elapsed = last_report - wall0
            lap = crossings[ci - 1][1]["lap"] if ci else 0
            print(f"replay {tl.session}: race time {now_t:7.1f}s lap {lap}/{tl.total_laps} "
                  f"crossings {sent_laps} points {sent_points} ({sent_points / max(elapsed, 1e-9):.0f}/s) "
                  f"lag {f'{lag:.2f}s' if speed else '-'}",
                  file=sys.stderr, flush=True)
    if client is not None and not stop():      # played to the end: the session is over
        client.hset(keys.session_meta(tl.session), "ended_at", time.time())
    return {"session": tl.session, "crossings": sent_laps, "points": sent_points,
            "seconds": time.monotonic() - wall0}
