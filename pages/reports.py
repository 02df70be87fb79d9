"""Reports: the session archive; a post-race PDF of any archived session (the whole field or
chosen cars) and its data (CSV or Parquet, zipped) to download."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update

from app import auth, postrace, ratelimit
from engine.archive.store import Archive, ArchiveError
from engine.report.history import cars_of, session_rows
from engine.settings import Settings

dash.register_page(__name__, path="/reports", name="Reports", order=6, title="PitWall · Reports")


def archive() -> Archive:
    """The session archive this web process reads."""
    return Archive.from_settings(Settings.from_env())


def sessions_table(rows: list[dict]) -> html.Div:
    """The archived sessions a debrief can be built for."""
    if not rows:
        return html.Div("The archive is empty: the engine archives every session it runs, and "
                        "`pitwall import DIR` archives a recorded race.", className="text-secondary")
    head = html.Thead(html.Tr([html.Th(h) for h in ("Session", "Track", "Race", "Date", "Kind", "Cars", "Laps", "")]))
    body = html.Tbody([html.Tr([html.Td(r["session"]), html.Td(r["track"]), html.Td(r["race"]), html.Td(r["date"]),
                                html.Td(r["kind"], title="live: archived as it ran; imported: from the recorded files"),
                                html.Td(r["cars"]), html.Td(r["laps"], title="laps of the leader"),
                                html.Td(r["problem"], className="text-warning")]) for r in rows])
    return dbc.Table([head, body], size="sm", hover=True, id="rp-table")


def layout(**_) -> html.Div:
    """The reports page: post-race PDF and data export."""
    rows = session_rows(archive())
    options = [{"label": f"{r['session']} · {r['track']}", "value": r["session"]} for r in rows if not r["problem"]]
    return html.Div([
        html.H5("Session archive", title="Every archived session (Parquet under the data directory)"),
        sessions_table(rows),
        html.H5("Post-race report and data", className="mt-3"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="rp-session", options=options, placeholder="archived session"), lg=3),
            dbc.Col(html.Div(dcc.Dropdown(id="rp-cars", multi=True, placeholder="cars (default: the whole field)"),
                             title="Leave empty for the whole field"), lg=4),
            dbc.Col(dbc.Button("Download PDF report", id="rp-pdf", color="primary"), lg="auto"),
            dbc.Col(dcc.RadioItems(id="rp-format", options=[{"label": " CSV", "value": "csv"},
                                                            {"label": " Parquet", "value": "parquet"}],
                                   value="csv", inline=True, inputStyle={"marginLeft": "0.6rem"}), lg="auto"),
            dbc.Col(dbc.Button("Download data (zip)", id="rp-export", color="secondary"), lg="auto"),
        ], className="g-2 align-items-center"),
        dcc.Loading(html.Div(id="rp-msg", className="small mt-2"), type="dot"),
        dcc.Download(id="rp-download"),
        dcc.Download(id="rp-data"),
    ])


@callback(Output("rp-cars", "options"), Output("rp-cars", "value"), Input("rp-session", "value"))
def rp_cars(session) -> tuple:
    """The car choices of the chosen archived session."""
    if not session:
        return [], []
    try:
        return [{"label": f"#{c}", "value": c} for c in cars_of(archive(), session)], []
    except ArchiveError:
        return [], []


@callback(Output("rp-download", "data"), Output("rp-msg", "children"), Input("rp-pdf", "n_clicks"),
          State("rp-session", "value"), State("rp-cars", "value"), prevent_initial_call=True)
def rp_pdf(_n, session, cars) -> tuple:
    """The report is built by `pitwall report` in its own process (app.postrace)."""
    if (why := auth.refusal("engineer", "building a report")
            or ratelimit.refusal("report", "report builds")) is not None:       # issue 16: engineers, rate-limited
        return no_update, html.Span(why, className="text-warning")
    if not session:
        return no_update, "Pick an archived session first."
    try:
        pdf, name, summary = postrace.report_pdf(archive(), session, cars or None)
    except postrace.Failed as exc:
        return no_update, html.Span(exc.reason, className="text-warning")
    return (dcc.send_bytes(pdf, name),
            f"{name}: {summary['pages']} pages, {summary['figures']} figures, built in {summary['seconds']:.1f} s")


@callback(Output("rp-data", "data"), Output("rp-msg", "children", allow_duplicate=True), Input("rp-export", "n_clicks"),
          State("rp-session", "value"), State("rp-cars", "value"), State("rp-format", "value"), prevent_initial_call=True)
def rp_export(_n, session, cars, fmt) -> tuple:
    """Export an archived session's data as a zip, for engineers only."""
    if (why := auth.refusal("engineer", "exporting data")) is not None:     # issue 16: engineers export
        return no_update, html.Span(why, className="text-warning")
    if not session:
        return no_update, "Pick an archived session first."
    try:
        data, name, got = postrace.export_zip(archive(), session, fmt, cars or None)
    except ArchiveError as exc:
        return no_update, html.Span(str(exc), className="text-warning")
    return dcc.send_bytes(data, name), f"{got['files']} {fmt} files, zipped"
