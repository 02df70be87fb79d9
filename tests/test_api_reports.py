"""Post-race reports and exports over the REST API with auth ON: a real GR Cup race imported into a
temporary archive (the `pitwall import` code path), its PDF as an engineer read back with
pdftotext, a viewer refused, unknown session / car 404 and a bad format 422 naming the field, and
the exported zip read back against the archive."""

from __future__ import annotations

import io
import subprocess
import time
import zipfile

import pandas as pd
import pytest

from engine.archive.importer import import_grcup
from engine.archive.store import Archive
from engine.settings import REPO_ROOT
from tests.test_report import RACE, official

pytestmark = pytest.mark.auth


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Barber race 2 archived as `pitwall import` archives it (import_grcup), once for the module."""
    var = tmp_path_factory.mktemp("var")
    got = import_grcup(RACE, 2, Archive(var / "archive"), REPO_ROOT / "models")
    return var, got["session"]


@pytest.fixture
def app(redis_url, data_dir, monkeypatch):
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(data_dir[0]))
    monkeypatch.setenv("PITWALL_RATE_REPLAY", "1/minute")
    from app.server import create_server

    return create_server()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_an_engineer_downloads_the_report_a_viewer_cannot(app, data_dir, make_token, tmp_path):
    session = data_dir[1]
    rows = official()
    winner = next(r for r in rows if r["POSITION"] == "1")["NUMBER"]
    second = next(r for r in rows if r["POSITION"] == "2")["NUMBER"]
    c = app.test_client()
    engineer, viewer = bearer(make_token("engineer")), bearer(make_token("viewer"))
    url = f"/api/sessions/{session}/report?car={winner}&gap_to={second}"
    refused = c.get(url, headers=viewer)
    assert refused.status_code == 403 and refused.json["error"]["field"] == "role"
    assert c.get(url, headers=bearer(make_token("engineer", ["read"]))).status_code == 403, "a read token builds nothing"
    started = time.perf_counter()
    r = c.get(url, headers=engineer)
    assert r.status_code == 200, r.data[:300]
    assert time.perf_counter() - started < 45
    assert r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    assert r.headers["Content-Disposition"].startswith("attachment;") and ".pdf" in r.headers["Content-Disposition"]
    (tmp_path / "r.pdf").write_bytes(r.data)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    cls = text[text.find("Classification"):text.find("Lap chart and gap chart")]
    assert any(ln.split()[:2] == ["1", f"#{winner}"] for ln in cls.splitlines()), "the winner heads the classification"
    assert f"Car #{winner}" in text and f"Gap chart reference: car #{second}" in text
    # PITWALL_RATE_REPLAY (1/minute here): the next build is refused with Retry-After; a 404 is not a build
    again = c.get(url, headers=engineer)
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1 and again.json["error"]["field"] == "rate"
    assert c.get(f"/api/sessions/{session}/report?car=4242", headers=engineer).status_code == 404

def test_unknown_session_car_and_bad_format(app, data_dir, make_token):
    session = data_dir[1]
    c = app.test_client()
    h = bearer(make_token("engineer"))
    for path, status, fld in (
            ("/api/sessions/no-such-race/report", 404, "session"),
            ("/api/sessions/no-such-race/export", 404, "session"),
            (f"/api/sessions/{session}/report?car=4242", 404, "car"),
            (f"/api/sessions/{session}/report?gap_to=4242", 404, "gap_to"),
            (f"/api/sessions/{session}/export?car=4242", 404, "car"),
            (f"/api/sessions/{session}/export?format=xlsx", 422, "format"),
            (f"/api/sessions/{session}/report?cars=1", 422, "cars"),
            (f"/api/sessions/{session}/report?car=a%20b", 422, "car")):
        r = c.get(path, headers=h)
        assert r.status_code == status and r.json["error"]["field"] == fld, (path, r.status_code, r.json)
    assert c.get(f"/api/sessions/{session}/export", headers=bearer(make_token("viewer"))).status_code == 403


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_zip_reads_back_the_archive(app, data_dir, make_token, fmt):
    session = data_dir[1]
    archive = Archive(data_dir[0] / "archive")
    laps = archive.read(session, "laps")
    r = app.test_client().get(f"/api/sessions/{session}/export?format={fmt}", headers=bearer(make_token("engineer")))
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == "application/zip" and f"pitwall-{session}-{fmt}.zip" in r.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        names = [n for n in z.namelist() if n.startswith(f"{session}/laps/")]
        assert len(names) == laps["car"].nunique()
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        back = pd.concat([read(io.BytesIO(z.read(n))) for n in names], ignore_index=True)
    assert len(back) == len(laps) and back["lap"].sum() == laps["lap"].sum()
    one = str(laps["car"].iloc[0])
    r = app.test_client().get(f"/api/sessions/{session}/export?format={fmt}&car={one}",
                              headers=bearer(make_token("engineer")))
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        assert {n.split("/")[2] for n in z.namelist()} == {f"car-{one}.{fmt}"}
