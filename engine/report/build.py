"""`pitwall report`: an archived session -> the post-race PDF, from the archive alone (no Redis).

Sections, in the order official timing and the analysis tools give them: cover, classification,
lap chart and gap chart, stints and pit stops, pace, best sectors and theoretical best, top
speeds, one part per car (degradation predicted vs actual, tyre state, strategy calls against
the outcome, driver fingerprint and alerts), model confidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.archive.store import Archive, ArchiveError
from engine.report import analysis as A
from engine.report import figures as F
from engine.report import pdf as P
from engine.report.render import FigureRenderer, write_pdf_atomic

SECTIONS = ("Classification", "Lap chart and gap chart", "Stints and pit stops", "Pace",
            "Best sectors and theoretical best lap", "Top speeds", "Model confidence")
WIDE, TALL = (1000, 430), (1000, 560)
CARS_PER_FIGURE = 4     # the per-car panels of four cars are one render: the browser's cost is per call


@dataclass
class SessionData:
    """Everything the report reads from the archive for one session."""

    session: str
    meta: dict
    laps: pd.DataFrame
    results: pd.DataFrame
    tyre: pd.DataFrame
    strategy: pd.DataFrame
    alerts: pd.DataFrame
    weather: pd.DataFrame
    tables: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, archive: Archive, session: str) -> "SessionData":
        """Read the session's tables; an ArchiveError when it has no laps to report on."""
        tables = archive.tables(session)
        laps = archive.read(session, "laps")
        if laps.empty:
            raise ArchiveError(f"session {session!r} has no laps in the archive: nothing to report")
        for col, default in (("flag", "GF"), ("in_pit", False), ("pit_time_s", np.nan), ("elapsed_s", np.nan),
                             ("top_speed", np.nan), ("s1_s", np.nan), ("s2_s", np.nan), ("s3_s", np.nan)):
            if col not in laps:
                laps[col] = default
        laps["in_pit"] = laps["in_pit"].fillna(False).astype(bool)
        laps["lap"] = laps["lap"].astype(int)
        return cls(session, archive.meta(session), laps, archive.read(session, "results"),
                   archive.read(session, "tyre"), archive.read(session, "strategy"),
                   archive.read(session, "alerts"), archive.read(session, "weather"), tables)

    def cars(self) -> list[str]:
        """The session's cars in running order, as the report lists them."""
        return A.car_order(self.laps["car"])


def _weather_text(w: pd.DataFrame) -> str:
    if w.empty:
        return "no weather in the archive"
    parts = []
    for col, name, unit in (("air_temp", "air", "°C"), ("track_temp", "track", "°C"), ("humidity", "humidity", "%")):
        if col in w and w[col].notna().any():
            parts.append(f"{name} {w[col].min():.1f}–{w[col].max():.1f} {unit}")
    if "rain" in w and w["rain"].notna().any():
        parts.append("rain" if (w["rain"] > 0).any() else "dry")
    return ", ".join(parts) or "no weather readings"


def cover(d: SessionData, cls: pd.DataFrame, source: str, cars: list[str]) -> list:
    """The report's cover page: track, session and the cars covered."""
    from engine.sources.tracks import TRACKS

    m = d.meta
    win = cls.iloc[0]
    track = m.get("track_name") or (TRACKS[m["track"]].name if m.get("track") in TRACKS else m.get("track", "?"))
    start = pd.to_numeric(m.get("start_utc") or m.get("started_at"), errors="coerce")
    date = m.get("date") or (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start)) if pd.notna(start) else "not recorded")
    sources = m.get("sources") or (f"live session archived as it ran: source {m.get('source', 'unknown')}, "
                                   f"timing {m.get('timing', 'from telemetry')}")
    story = [P.Paragraph("PitWall post-race report", P.TITLE),
             P.heading(f"{track} — race {m.get('race', '?')}", 2),
             P.para(f"Session: {d.session}"), P.para(f"Date: {date}"),
             P.para(f"Weather: {_weather_text(d.weather)}"),
             P.para(f"Result: winner car #{win['car']}, {P.cell(win['laps'], 0)} laps in {win['total_time']} "
                    f"(classification: {source})."),
             P.para("Podium: " + ", ".join(f"P{int(r.position)} #{r.car}" for r in cls.head(3).itertuples())),
             P.para(f"Cars in this report: {'the whole field' if len(cars) == len(d.cars()) else ', '.join('#' + c for c in cars)}"),
             P.spacer(), P.heading("Data sources", 2),
             *[P.para(s.strip(), small=True) for s in sources.split(";")],
             P.para(f"Archive tables: {', '.join(d.tables)}", small=True),
             P.para(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by PitWall from the "
                    "session archive (every figure: measured timing unless marked modelled).", small=True),
             P.page_break()]
    return story


def classification_section(cls: pd.DataFrame, source: str) -> list:
    """The final classification table with gaps and fastest laps."""
    df = cls[["position", "car", "laps", "total_time", "gap", "best_lap_s", "best_lap_no", "status"]].copy()
    df["best_lap_s"] = df["best_lap_s"].map(A.fmt_time)
    df["car"] = "#" + df["car"]
    fl = cls.dropna(subset=["best_lap_s"]).sort_values("best_lap_s").head(1)
    fastest = (f"Fastest lap: {A.fmt_time(fl['best_lap_s'].iloc[0])} by car #{fl['car'].iloc[0]}"
               + (f" on lap {int(fl['best_lap_no'].iloc[0])}" if pd.notna(fl["best_lap_no"].iloc[0]) else "")
               if len(fl) else "Fastest lap: not in the data")
    return [P.heading("Classification"), P.para(f"Source: {source}."), P.para(fastest + "."),
            P.table(df, ["Pos", "Car", "Laps", "Total time", "Gap", "Best lap", "on lap", "Status"],
                    {"position": 0, "laps": 0, "best_lap_no": 0}), P.page_break()]


def car_section(d: SessionData, car: str, final_pos: dict, fp: pd.DataFrame) -> list:
    """One car's tables: tyre state, strategy calls against the outcome, fingerprint and alerts."""
    story = [P.heading(f"Car #{car}", 2)]
    if d.tyre.empty:
        story.append(P.para("Tyre model: this session has no tyre model outputs in the archive. "
                            + d.meta.get("tyre", "")))
    else:
        last = d.tyre[d.tyre["car"] == car].sort_values("lap").tail(1)
        if len(last):
            r = last.iloc[0]
            worst = max(("fl", "fr", "rl", "rr"), key=lambda c: r.get(f"wear_{c}", 0) or 0)
            cliff = r["laps_to_cliff"]
            state = (f"(wear modelled from this car's measured loads): most worn corner {worst.upper()} at "
                     f"{r[f'wear_{worst}']:.0f} % of the cliff" if r.get("wear_source") == "telemetry" else
                     f"(estimated from the car's lap times; no telemetry, so no corner wear): own degradation "
                     f"{r.get('deg_rate_s_per_lap', float('nan')):+.3f} s/lap beyond the field's")
            story.append(P.para(
                f"Tyre state after lap {int(r['lap'])} {state}; laps to the cliff: "
                f"{'none before the flag' if not np.isfinite(cliff) else f'{cliff:.0f}'}; the model's projected "
                f"loss over the laps left {r['deg_s_per_lap']:+.3f} s/lap (modelled)."))
    calls = d.strategy[d.strategy["car"] == car] if not d.strategy.empty else d.strategy
    story.append(P.para("<b>Strategy calls against the outcome</b>"))
    if calls.empty:
        story.append(P.para(f"No strategy calls archived for this car. {d.meta.get('strategy', '')}"))
    else:
        pits = d.laps[(d.laps["car"] == car) & d.laps["in_pit"]]["lap"].tolist()
        df = calls[["lap", "position", "pit_call", "expected_position"]].copy()
        df["finish"] = final_pos.get(car)
        df["pitted"] = ", ".join(map(str, pits)) or "no stop"
        story.append(P.table(df, ["Lap", "Pos then", "Call", "Expected finish", "Finished", "Pitted on lap"],
                             {"lap": 0, "position": 0, "expected_position": 1, "finish": 0},
                             widths=[28, 40, 250, 60, 45, 60]))
    story.append(P.para("<b>Driver fingerprint and coaching alerts</b>"))
    mine = fp[(fp["car"] == car) & fp["part"].isin(["S1", "S2", "S3", "lap"])] if len(fp) else fp
    if len(mine):
        story.append(P.table(mine[["part", "driver_s", "field_s", "delta_s", "rank", "laps"]],
                             ["Part", "Driver median s", "Field median s", "Delta s", "Rank", "Clean laps"],
                             {"rank": 0, "laps": 0}))
    else:
        story.append(P.para("No clean laps with sector times: no fingerprint."))
    al = d.alerts[d.alerts["car"] == car] if not d.alerts.empty else d.alerts
    if al.empty:
        story.append(P.para("Coaching alerts: none " + ("archived for this session." if d.alerts.empty and "alerts" not in d.tables
                                                          else "raised for this car.")))
    else:
        story.append(P.table(al[["lap", "type", "severity", "message"]], ["Lap", "Type", "Severity", "Message"],
                             {"lap": 0}, widths=[28, 70, 50, 380]))
    story.append(P.page_break())
    return story


def confidence_section(d: SessionData, cars: list[str], fig) -> list:
    """How far the tyre model's predictions could be trusted in this race."""
    story = [P.heading("Model confidence")]
    cov = A.interval_coverage(d.tyre, d.laps)
    if not cov.get("n"):
        return story + [P.para("This session has no tyre model predictions with a following lap: no coverage to report.")]
    story.append(P.para(
        f"The tyre model's 80 % interval for the next lap time held the actual lap in {100 * cov['coverage']:.1f} % "
        f"of {cov['n']} predictions in this race (nominal 80 %); mean absolute error {cov['mae_s']:.2f} s. "
        f"On green laps (no caution, no pit lap next): {100 * (cov['green_coverage'] or 0):.1f} % of {cov['green_n']}, "
        f"MAE {cov['green_mae_s'] or 0:.2f} s. Below 80 % the intervals were too narrow for this race; above, too wide."))
    seen = d.meta.get("tyre_trained_on_this_race")
    story.append(P.para(
        "The tyre model was trained on this race: this coverage is in-sample, not a forecast's (the held-out "
        "figures are in models/MODEL_CARD.md)." if seen == "yes" else
        "The tyre model was not trained on this race: this coverage is out of sample." if seen == "no" else
        "If the tyre model was trained on this race (models/MODEL_CARD.md lists its races), this coverage is "
        "in-sample, not a forecast's.", small=True))
    pc = cov["per_car"][cov["per_car"]["car"].isin(cars)]
    story.append(fig(F.coverage_chart(pc, cars)))
    return story


def build_report(archive: Archive, session: str, out: Path, cars: list[str] | None = None,
                 gap_to: str | None = None) -> dict:
    """Write the PDF for `session` (optionally only some cars; the gap chart against the leader or
    the car `gap_to`) to `out`; returns pages, figures, seconds."""
    started = time.perf_counter()
    d = SessionData.load(archive, session)
    field_cars = d.cars()
    unknown = [c for c in (cars or []) + ([gap_to] if gap_to else []) if str(c) not in field_cars]
    if unknown:
        raise ArchiveError(f"car {', '.join('#' + str(c) for c in unknown)} is not in session {session!r} "
                           f"(cars: {', '.join(field_cars)})")
    chosen = [str(c) for c in cars] if cars else field_cars
    with FigureRenderer() as r:     # the browser starts, then draws each figure while the next is composed
        compose_started = time.perf_counter()
        story, figs = compose(d, chosen, r.submit, str(gap_to) if gap_to else None)
        compose_s = time.perf_counter() - compose_started
        render_started = time.perf_counter()
        pngs = [r.result(fut) for _f, _w, _h, fut in figs]
        render_s = time.perf_counter() - render_started
    flow = [P.figure(pngs[item[1]], figs[item[1]][1], figs[item[1]][2]) if isinstance(item, tuple) else item
            for item in story]
    pages = {}

    def write(tmp: Path) -> None:
        pages["n"] = P.build(tmp, flow, f"PitWall report {session}",
                             f"PitWall · {session} · {d.meta.get('track_name', d.meta.get('track', ''))} race {d.meta.get('race', '')}")

    pdf_started = time.perf_counter()
    try:
        write_pdf_atomic(write, out)
    except OSError as exc:
        raise ArchiveError(f"cannot write the report {out}: {exc.strerror or exc}") from exc
    return {"session": session, "out": str(out), "pages": pages["n"], "figures": len(figs),
            "cars": len(chosen), "compose_seconds": round(compose_s, 3), "render_seconds": round(render_s, 3),
            "pdf_seconds": round(time.perf_counter() - pdf_started, 3),
            "seconds": round(time.perf_counter() - started, 3)}


def compose(d: SessionData, chosen: list[str], submit, gap_to: str | None = None) -> tuple[list, list[tuple]]:
    """The report's story (flowables, with ('fig', i) where figure i goes) and its figures
    (fig, w, h, future): each figure is handed to submit(fig, w, h) as soon as it is built."""
    cls, source = A.classification(d.laps, d.results)
    if d.meta.get("results_file") and not d.results.empty:
        source = f"the organisers' results file {d.meta['results_file']}"
    order = [c for c in cls["car"] if c in chosen] + [c for c in chosen if c not in set(cls["car"])]
    cautions = A.caution_laps(d.laps)
    pos = A.positions(d.laps)
    figs: list[tuple] = []

    def fig(f, size=WIDE):
        figs.append((f, *size, submit(f, *size)))
        return ("fig", len(figs) - 1)

    from engine.driver.sections import fingerprint
    fp = fingerprint(d.laps.sort_values(["car", "lap"]).reset_index(drop=True))
    st, stops = A.stints(d.laps), A.pit_stops(d.laps)
    pace = A.clean_stint_pace(d.laps)
    best = A.best_sectors(d.laps)
    story = cover(d, cls, source, chosen) + classification_section(cls, source)
    story += [P.heading("Lap chart and gap chart"),
              P.para(f"Positions and gaps at the line; caution laps shaded. Gap chart reference: "
                     f"{'car #' + gap_to if gap_to else 'the leader'}.", small=True),
              fig(F.lap_chart(pos, cautions), TALL),
              fig(F.gap_chart(pos, cautions, gap_to), TALL), P.page_break()]
    stop_tab = stops.assign(car="#" + stops["car"])
    story += [P.heading("Stints and pit stops"), fig(F.stint_chart(st, stops, order), TALL),
              P.heading("Pit-stop summary", 2),
              P.table(stop_tab, ["Car", "In-lap", "Pit lane s", "Pos before", "Pos after", "Gained"],
                      {"lap": 0, "pit_lane_s": 1, "position_before": 0, "position_after": 0, "positions_gained": 0})
              if len(stops) else P.para("No pit stops in this session."), P.page_break()]
    rank = {c: i for i, c in enumerate(order)}
    pace_tab = (pace[pace["car"].isin(chosen)].sort_values(["car", "stint"], key=lambda c: c.map(rank) if c.name == "car" else c)
                .assign(car=lambda x: "#" + x["car"]))
    story += [P.heading("Pace"), fig(F.pace_scatter(d.laps[d.laps["car"].isin(chosen)], cautions, order)),
              fig(F.pace_distribution(d.laps, order)),
              P.heading("Clean average per stint", 2),
              P.para("Caution laps, in- and out-laps and lap 1 dropped, then laps more than 10 % over the mean; "
                     "the mean recomputed.", small=True),
              P.table(pace_tab, ["Car", "Stint", "Laps", "Clean laps", "Mean s", "Clean mean s"],
                      {"stint": 0, "laps": 0, "clean_laps": 0}), P.page_break()]
    best_tab = best[best["car"].isin(chosen)].assign(car=lambda x: "#" + x["car"])
    story += [P.heading("Best sectors and theoretical best lap"),
              P.table(best_tab, ["Car", "Best lap s", "Best S1 s", "Best S2 s", "Best S3 s", "Theoretical s", "Left s"]),
              P.page_break()]
    top = A.top_speeds(d.laps[d.laps["car"].isin(chosen)])
    story += [P.heading("Top speeds")]
    story += [fig(F.top_speed_chart(top)), P.table(top.assign(car="#" + top["car"]), ["Car", "Top speed km/h", "Lap"],
                                                   {"top_speed": 1, "lap": 0})] if len(top) else \
        [P.para("The timing has no TOP_SPEED for this session.")]
    story.append(P.page_break())
    final_pos = dict(zip(cls["car"], cls["position"]))
    for i in range(0, len(order), CARS_PER_FIGURE):
        group = order[i:i + CARS_PER_FIGURE]
        story.append(P.heading("Per car: " + ", ".join(f"#{c}" for c in group)))
        if not d.tyre.empty:
            story.append(fig(F.car_panels(d.laps, d.tyre, group), (1000, 110 + 265 * len(group))))
        for car in group:
            story += car_section(d, car, final_pos, fp)
        story.append(P.page_break())
    story += confidence_section(d, order, fig)

    return story, figs
