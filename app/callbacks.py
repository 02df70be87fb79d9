"""Callbacks every page shares: the session list in the navbar and the choice of session, the
followed car (app/follow.py: the address's ?car=) in the navbar's selector and the nav links."""

from __future__ import annotations

from dash import ALL, Input, Output, State, callback, no_update

from app import data, follow


@callback(Output("session", "options"), Output("session", "value"),
          Input("sessions-poll", "n_intervals"), Input(follow.LOCATION_ID, "search"), State("session", "value"))
def session_options(_n: int | None, search: str | None,
                    current: str | None) -> tuple[list[dict], str | None]:
    """Known sessions; ?session= in the address wins, then the user's choice, then the newest."""
    sessions = data.sessions()
    options = [{"label": f"{s['session']} · lap {s.get('lap', '?')}", "value": s["session"]} for s in sessions]
    wanted = follow.followed_session(search)
    known = {s["session"] for s in sessions}
    if wanted in known:
        current = wanted
    elif current not in known:
        current = sessions[0]["session"] if sessions else None
    return options, current


@callback(Output(follow.LOCATION_ID, "search", allow_duplicate=True), Input("session", "value"),
          State(follow.LOCATION_ID, "search"), prevent_initial_call=True)
def session_into_address(session: str | None, search: str | None):
    """The session picked goes into the address (so a reload keeps it: the dropdown keeps nothing in
    the browser; Dash 4's dropdown once cleared a persisted value and persistence then held it at
    none), replacing the one the address names; the newest session, the default, is left out of a
    plain address. An address naming a session not known yet (a replay just started) is left as it
    is: session_options switches to it when it is known."""
    named = follow.followed_session(search)
    known = [s["session"] for s in data.sessions()]
    if not session or named == session or (named is None and known and session == known[0]) \
            or (named is not None and named not in known):
        return no_update
    return follow.search_with(search, session=session, car=None)


@callback(Output(follow.SELECT_ID, "options"), Output(follow.SELECT_ID, "value"),
          Input("session", "value"), Input(follow.LOCATION_ID, "search"), Input("fallback-poll", "n_intervals"),
          Input("sessions-poll", "n_intervals"))
def follow_options(session: str | None, search: str | None, _p, _s) -> tuple:
    """The Follow selector: the field in running order, the address's car as its value."""
    car = follow.followed_car(search)
    opts, _ = car_choices(session, car)
    if car and all(o["value"] != car for o in opts):
        opts = [*opts, {"label": f"#{car} (not in the field)", "value": car}]
    return opts, car


@callback(Output(follow.LOCATION_ID, "search", allow_duplicate=True), Input(follow.SELECT_ID, "value"),
          State(follow.LOCATION_ID, "search"), State("session", "value"), prevent_initial_call=True)
def follow_into_address(car: str | None, search: str | None, session: str | None):
    """Following a car writes it (and the session it is in) into the address; clearing unfollows."""
    if (car or None) == follow.followed_car(search):
        return no_update
    return follow.search_with(search, car=car, session=session if car else follow.followed_session(search))


@callback(Output({"type": "nav-link", "path": ALL}, "href"), Output({"type": "nav-link", "path": ALL}, "active"),
          Input(follow.LOCATION_ID, "search"), Input(follow.LOCATION_ID, "pathname"),
          State({"type": "nav-link", "path": ALL}, "id"))
def nav_links(search: str | None, pathname: str | None, ids: list[dict]) -> tuple[list, list]:
    """The nav links carry the followed car and the session, so every page opens on them."""
    paths = [i["path"] for i in ids]
    return [follow.href_with(p, search) for p in paths], [p == (pathname or "/") for p in paths]


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


def row_label(row: dict) -> str:
    """How a board row's car is named on screen: "#12", or for F1 the race number and name from
    the game's Participants ("#3 VERSTAPPEN"; the car's key stays its slot)."""
    f1 = row.get("f1") or {}
    return f"#{f1['number']} {f1.get('name', '')}".strip() if "number" in f1 else f"#{row['car']}"


def car_label(session: str | None, car: object) -> str:
    """The on-screen name of a session's car (row_label), "#<car>" when it is not on the board."""
    rows = ((data.board(session) if session else None) or {}).get("cars", [])
    row = next((c for c in rows if str(c.get("car")) == str(car)), None)
    return row_label(row) if row else f"#{car}"


def car_choices(session: str | None, current: str | None, search: str | None = None) -> tuple[list[dict], str | None]:
    """The car dropdown of a car page: the field in running order. The followed car of the address
    (?car=) wins when it is in the field, then the current choice (also while no board is there
    yet, so a ?car= link survives the first refresh), else the leader."""
    rows = ((data.board(session) if session else None) or {}).get("cars", [])
    cars = [str(c["car"]) for c in rows]
    labels = [row_label(c) for c in rows]
    opts = [{"label": f"P{i + 1} · {label}", "value": c} for i, (c, label) in enumerate(zip(cars, labels))]
    for want in (follow.followed_car(search), None if current is None else str(current)):
        if want is not None and (want in cars or not cars):
            return opts, want
    return opts, (cars[0] if cars else None)


def car_picker(session: str | None, current: str | None, search: str | None, live: bool = False) -> tuple:
    """(options, value) for a page's car picker, no_update where nothing changes: a live-feed push
    never moves the picker (so it cannot fall back to the leader), the address's ?car= does."""
    opts, value = car_choices(session, current, search)
    if live and (value == current or not opts):
        return no_update, no_update
    return opts, (no_update if value == current else value)
