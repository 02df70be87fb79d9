"""Follow a car across every page (issue 15 item 3). The followed car is the `car` query parameter
of the address (`?car=N`, beside `?session=`): a reload, a bookmark or a link sent to a colleague
opens on it. Every page reads it from the `follow-url` location (a dcc.Location that writes the
address without re-rendering the page); picking a car (the navbar's Follow selector, a car page's
picker, a tower click) writes it there; the nav links carry it; the tower, the map and the charts
highlight it with the style below. See /work/coord/follow-contract.md.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dash import Input, Output, State, callback, dcc, html, no_update

from app import views

LOCATION_ID = "follow-url"         # Input(LOCATION_ID, "search") in any page callback
SELECT_ID = "follow-car"           # the navbar's Follow selector
COLOUR = views.YELLOW              # Okabe-Ito yellow: the followed car on every page
ROW_CLASS = "followed"             # the tower row of the followed car (assets/pitwall.css)
CARRIED = ("car", "session")       # query parameters the nav links carry from page to page


def params(search: str | None) -> dict[str, str]:
    """The address's query parameters, one value each (the first)."""
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v and v[0]}


def followed_car(search: str | None) -> str | None:
    """The followed car from the address's query string ('?car=22&session=x' -> '22'), else None."""
    car = params(search).get("car", "").strip().lstrip("#")
    return car or None


def followed_session(search: str | None) -> str | None:
    """The session named in the address, else None."""
    return params(search).get("session") or None


def search_with(search: str | None, **changes: str | None) -> str:
    """The query string with `changes` applied (None removes a parameter), '' when empty."""
    p = params(search)
    for k, v in changes.items():
        if v is None or v == "":
            p.pop(k, None)
        else:
            p[k] = str(v)
    return "?" + urlencode(p) if p else ""


def href_with(path: str, search: str | None) -> str:
    """A link to `path` carrying the followed car and the session of the current address."""
    p = {k: v for k, v in params(search).items() if k in CARRIED}
    return path + ("?" + urlencode(p) if p else "")


def is_followed(car: object, followed: str | None) -> bool:
    """Whether `car` (str or int) is the followed car."""
    return followed is not None and str(car) == str(followed)


def line_style(car: object, followed: str | None, colour: str) -> dict:
    """A chart trace's line for `car`: the followed car thick in COLOUR, the others thin and dimmed
    (their own colour kept) while a car is followed; unchanged when none is."""
    if followed is None:
        return {"line": {"color": colour, "width": 2}, "opacity": 1.0}
    if is_followed(car, followed):
        return {"line": {"color": COLOUR, "width": 4}, "opacity": 1.0}
    return {"line": {"color": colour, "width": 1}, "opacity": 0.45}


def marker_outline(cars: list[str], followed: str | None, ring_px: float = 5) -> dict:
    """Per-point marker outline for a scatter of cars: the followed car ringed in COLOUR."""
    return {"color": [COLOUR if is_followed(c, followed) else "#ffffff" for c in cars],
            "width": [ring_px if is_followed(c, followed) else 1.5 for c in cars]}


def shell() -> list:
    """The follow location (in every page's shell, beside the app's `url`)."""
    return [dcc.Location(id=LOCATION_ID, refresh=False)]


def selector() -> html.Div:
    """The navbar's Follow selector: the field in running order, the followed car as its value."""
    return html.Div(dcc.Dropdown(id=SELECT_ID, placeholder="follow a car", clearable=True),
                    title="Follow a car: it is highlighted in the tower, on the map and in the charts, and the "
                          "car, strategy and driver pages open on it (kept in the address, so a reload keeps it)",
                    style={"minWidth": "9rem"}, className="me-2 follow-select")


def picker_writes_address(dropdown_id: str) -> None:
    """Register: picking a car in `dropdown_id` (a page's car picker) makes it the followed car in
    the address; the address changing (the navbar selector, back/forward) moves the picker."""
    @callback(Output(LOCATION_ID, "search", allow_duplicate=True), Input(dropdown_id, "value"),
              State(LOCATION_ID, "search"), prevent_initial_call=True)
    def _write(car, search):
        if not car or followed_car(search) == str(car):
            return no_update
        return search_with(search, car=str(car))
