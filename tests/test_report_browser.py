"""The Reports and History pages in headless Chromium against a real `pitwall web` (gunicorn +
gevent) whose archive holds two real imported races: a PDF report is downloaded from the
Reports page and read back; the History page compares the two races."""

from __future__ import annotations

import subprocess
import time

import pytest

from app import commands
from engine.archive.importer import import_grcup
from engine.archive.store import Archive
from engine.redisserver import free_port
from engine.settings import REPO_ROOT, Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    data = tmp_path_factory.mktemp("var")
    archive = Archive(data / "archive")
    for race in (1, 2):
        import_grcup(REPO_ROOT / "data" / "grcup" / "barber", race, archive, REPO_ROOT / "models")
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(), data_dir=data)
    proc = commands.spawn(settings, log_path=tmp_path_factory.mktemp("web") / "web.log")
    yield f"http://127.0.0.1:{settings.http_port}"
    commands.stop(proc, quick=True)


def _severe(browser) -> list:
    return [e for e in browser.get_logs() or [] if e.get("level") == "SEVERE"]


def test_a_report_downloads_from_the_reports_page(dash_br, web, screenshots):
    from pathlib import Path

    dash_br.server_url = web
    dash_br.driver.get(web + "/reports")
    dash_br.wait_for_element("#rp-table", timeout=20)
    rows = dash_br.driver.execute_script("return [...document.querySelectorAll('#rp-table tbody tr')].map(r => r.cells[0].textContent)")
    assert rows == ["barber-r1", "barber-r2"]
    dash_br.select_dcc_dropdown("#rp-session", "barber-r2 · Barber Motorsports Park")
    dash_br.wait_for_element("#rp-cars", timeout=10)
    dash_br.select_dcc_dropdown("#rp-cars", "#13")
    dash_br.find_element("#rp-pdf").click()
    dash_br.wait_for_contains_text("#rp-msg", "pages", timeout=150)
    folder = Path(dash_br.download_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(folder.glob("*.pdf")):
        time.sleep(0.2)
    pdfs = list(folder.glob("*.pdf"))
    assert [p.name for p in pdfs] == ["pitwall-barber-r2-cars-13.pdf"]
    assert pdfs[0].read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", str(pdfs[0]), "-"], capture_output=True, text=True, check=True).stdout
    assert "Car #13" in text and "Classification" in text and "Model confidence" in text
    assert "Car #22" not in text, "only the chosen car's part"
    dash_br.driver.save_screenshot(str(screenshots / "page_reports.png"))
    # the data, zipped
    dash_br.find_element("#rp-export").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(folder.glob("*.zip")):
        time.sleep(0.2)
    import zipfile
    names = zipfile.ZipFile(next(folder.glob("*.zip"))).namelist()
    assert "barber-r2/laps/car-13.csv" in names and not any("car-22" in n for n in names)
    assert not _severe(dash_br), _severe(dash_br)


def test_history_compares_two_archived_races(dash_br, web, screenshots):
    dash_br.server_url = web
    dash_br.driver.get(web + "/history")
    dash_br.wait_for_element("#hi-pace-graph .js-plotly-plot", timeout=30)
    dash_br.wait_for_element("#hi-deg-graph .js-plotly-plot", timeout=30)
    table = dash_br.find_element("#hi-table").text
    assert "barber-r1" in table and "barber-r2" in table and "#13" in table
    names = dash_br.driver.execute_script(
        "return document.querySelector('#hi-pace-graph .js-plotly-plot').data.map(t => t.name)")
    assert names == ["barber-r1", "barber-r2"]
    dash_br.driver.save_screenshot(str(screenshots / "page_history.png"))
    assert not _severe(dash_br), _severe(dash_br)
