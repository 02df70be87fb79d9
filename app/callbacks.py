"""Callbacks every page shares: the session list in the navbar and the choice of session."""

from __future__ import annotations

from urllib.parse import parse_qs

from dash import Input, Output, State, callback

from app import data


@callback(Output("session", "options"), Output("session", "value"),
          Input("sessions-poll", "n_intervals"), Input("url", "search"), State("session", "value"))
def session_options(_n: int | None, search: str | None,
                    current: str | None) -> tuple[list[dict], str | None]:
    """Known sessions; ?session= in the address wins, then the user's choice, then the newest."""
    sessions = data.sessions()
    options = [{"label": f"{s['session']} · lap {s.get('lap', '?')}", "value": s["session"]} for s in sessions]
    wanted = (parse_qs((search or "").lstrip("?")).get("session") or [None])[0]
    known = {s["session"] for s in sessions}
    if wanted in known:
        current = wanted
    elif current not in known:
        current = sessions[0]["session"] if sessions else None
    return options, current


def touches(feed: dict | None, session: str | None, car: str | None = None, kinds: tuple = ()) -> bool:
    """Whether a live-feed update concerns this session (and car, and producer kinds)."""
    if not feed:
        return True
    for e in feed.get("events", []):
        d = e.get("data") or {}
        if d.get("session") not in (None, session):
            continue
        if car is not None and d.get("car") is not None and str(d["car"]) != str(car):
            continue
        if kinds and d.get("kind") not in kinds:
            continue
        return True
    return any(a.get("session") in (None, session) for a in feed.get("alerts", []))


def car_choices(session: str | None, current: str | None) -> tuple[list[dict], str | None]:
    """The car dropdown of a car page: the field in running order; keep the choice (also while no
    board is there yet, so a ?car= link survives the first refresh), else the leader."""
    rows = ((data.board(session) if session else None) or {}).get("cars", [])
    cars = [c["car"] for c in rows]
    # F1: the race number and name from the game's Participants (the value stays the car's slot)
    labels = [f"#{c['f1']['number']} {c['f1'].get('name', '')}" if "number" in (c.get("f1") or {}) else f"#{c['car']}"
              for c in rows]
    return ([{"label": f"P{i + 1} · {label}", "value": c} for i, (c, label) in enumerate(zip(cars, labels))],
            current if current in cars or not cars else cars[0])
