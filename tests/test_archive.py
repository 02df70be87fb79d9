"""The session archive on real data: import, read back, export (CSV and Parquet read back equal to
the archive), and bad input (unknown session, car not in it, corrupt or partial Parquet, full disk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.archive.export import EXPORT_TABLES, export_session
from engine.archive.importer import import_grcup
from engine.archive.store import Archive, ArchiveError
from engine.settings import REPO_ROOT

BARBER = REPO_ROOT / "data" / "grcup" / "barber"
F1 = REPO_ROOT / "data" / "f1udp" / "f1_25_season2026_fmt2026_f1-packets.bin.gz"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Archive:
    a = Archive(tmp_path_factory.mktemp("var") / "archive")
    import_grcup(BARBER, 1, a, REPO_ROOT / "models")
    return a


def test_import_holds_every_table(archive):
    laps = archive.read("barber-r1", "laps")
    official = pd.read_csv(next(BARBER.glob("23_Analysis*Race 1*")), sep=";", encoding="utf-8-sig")
    assert len(laps) == len(official.drop_duplicates(subset=[official.columns[0], " LAP_NUMBER"]))
    assert set(archive.tables("barber-r1")) >= {"meta", "laps", "results", "telemetry", "tyre", "weather", "flags"}
    tyre = archive.read("barber-r1", "tyre")
    assert len(tyre) == len(laps) and tyre["predicted_next_lap_s"].notna().all()
    tel = archive.read("barber-r1", "telemetry")
    assert set(tel["car"]) == {"2"} and len(tel) > 10_000
    meta = archive.meta("barber-r1")
    assert meta["track"] == "barber" and "23_AnalysisEnduranceWithSections_Race 1" in meta["sources"]


def _read_back(folder: Path, table: str, fmt: str) -> pd.DataFrame:
    files = sorted((folder / table).glob(f"car-*.{fmt}"))
    if fmt == "csv":
        parts = [pd.read_csv(f, dtype={"car": str, "session": str, "flag": str, "driver": str}, keep_default_na=True)
                 for f in files]
    else:
        parts = [pd.read_parquet(f) for f in files]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_reads_back_equal_to_the_archive(archive, tmp_path, fmt):
    got = export_session(archive, "barber-r1", fmt, tmp_path)
    folder = Path(got["out"])
    assert got["files"] > 0 and set(got["tables"]) >= {"laps", "tyre", "alerts", "telemetry"}
    for table in EXPORT_TABLES:
        want = archive.read("barber-r1", table)
        if want.empty:
            assert not (folder / table).exists()
            continue
        back = _read_back(folder, table, fmt)
        key = [c for c in ("car", "lap", "t", "type") if c in want.columns]
        want = want.sort_values(key).reset_index(drop=True)
        back = back.sort_values(key).reset_index(drop=True)[list(want.columns)]
        if fmt == "csv":   # CSV has no types: compare values (floats written with full precision)
            for col in want.columns:
                if want[col].dtype == object or str(want[col].dtype).startswith(("string", "str")):
                    want[col] = want[col].astype(object).where(want[col].notna(), None).astype(str)
                    back[col] = back[col].astype(object).where(back[col].notna(), None).astype(str)
            pd.testing.assert_frame_equal(back, want, check_dtype=False, check_exact=True)
        else:
            pd.testing.assert_frame_equal(back, want, check_exact=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no staging left


def test_unknown_session_and_car(archive, tmp_path):
    with pytest.raises(ArchiveError, match="'nope' is not in the archive.*barber-r1"):
        archive.read("nope", "laps")
    with pytest.raises(ArchiveError, match="car 999 is not in session 'barber-r1'"):
        export_session(archive, "barber-r1", "csv", tmp_path, cars=["999"])
    with pytest.raises(ArchiveError, match="session id"):
        archive.session_dir("../etc")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_and_partial_parquet_are_named(archive, tmp_path):
    import shutil

    copy = Archive(tmp_path / "archive")
    shutil.copytree(archive.session_dir("barber-r1"), copy.session_dir("barber-r1"))
    part = next((copy.session_dir("barber-r1") / "laps").glob("part-*.parquet"))
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])            # a partial file (a crash mid-copy)
    with pytest.raises(ArchiveError, match=rf"table 'laps': {part.name} is corrupt or partial"):
        copy.read("barber-r1", "laps")
    part.write_bytes(b"not parquet at all" * 10)         # a corrupt one
    with pytest.raises(ArchiveError, match="corrupt or partial"):
        copy.read("barber-r1", "laps")
    # the CLI says the same and exits != 0, writing nothing
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = tmp_path / "r.pdf"
    run = subprocess.run([sys.executable, "-m", "engine.cli", "report", "barber-r1", "--archive", str(copy.root),
                          "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "corrupt or partial" in run.stderr and part.name in run.stderr
    assert not out.exists()
    run = subprocess.run([sys.executable, "-m", "engine.cli", "export", "barber-r1", "--archive", str(copy.root),
                          "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "corrupt or partial" in run.stderr
    assert not (tmp_path / "x" / "barber-r1").exists()


def test_import_onto_a_full_disk_leaves_nothing(tmp_path):
    """A real 256 KiB filesystem (tmpfs, as root): the import fails naming the file and the reason,
    exit != 0, and the archive holds no half-written session."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {got.stderr.strip()}")
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PITWALL_DATA_DIR": str(mnt)}
        run = subprocess.run([sys.executable, "-m", "engine.cli", "import", str(BARBER), "--race", "1", "--json"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode != 0
        assert "No space left on device" in run.stderr and "barber-r1" in run.stderr, run.stderr
        assert Archive(mnt / "archive").sessions() == []
        assert [p.name for p in (mnt / "archive").iterdir()] == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_f1_capture_imports_as_a_session(tmp_path):
    from engine.archive.f1import import import_f1

    a = Archive(tmp_path / "archive")
    got = import_f1(F1, a)
    laps = a.read(got["session"], "laps")
    assert got["rows"]["telemetry"] > 10_000 and len(laps) >= 20
    assert laps["lap_time_s"].between(60, 200).all()       # the game's own lap times
    s = (laps["s1_s"] + laps["s2_s"] + laps["s3_s"] - laps["lap_time_s"]).abs()
    assert (s < 1e-6).all()
    assert json.loads(json.dumps(got))["session"].startswith("f1-")


def test_parts_collapse_by_key_and_compact_to_one(archive, tmp_path):
    """Flushes append parts; a redelivered lap written twice reads back once (the last write), and
    compaction leaves one part with the same rows."""
    a = Archive(tmp_path / "archive")
    laps = archive.read("barber-r1", "laps")
    first, second = laps.iloc[:300], laps.iloc[250:]            # laps 250-299 written twice
    a.append("live-test", "laps", first)
    a.append("live-test", "laps", second.assign(kph=second["kph"] + 1.0))
    got = a.read("live-test", "laps")
    assert len(got) == len(laps) and not got.duplicated(["car", "lap"]).any()
    again = got.set_index(["car", "lap"]).loc[list(zip(second["car"], second["lap"])), "kph"].to_numpy()
    assert (again == second["kph"].to_numpy() + 1.0).all(), "the later write wins"
    assert a.compact("live-test") == 2
    parts = list((a.session_dir("live-test") / "laps").glob("part-*.parquet"))
    assert len(parts) == 1
    pd.testing.assert_frame_equal(a.read("live-test", "laps"), got)


def test_a_lap_buffered_twice_into_one_part_reads_back_once(archive, tmp_path):
    """The archive stage re-takes its own unacknowledged entries (XAUTOCLAIM) while a full disk keeps
    its buffer: the first part that finally gets written holds those laps twice; they read back once."""
    a = Archive(tmp_path / "archive")
    laps = archive.read("barber-r1", "laps")
    a.append("live-test", "laps", pd.concat([laps, laps.iloc[:40].assign(kph=laps["kph"].iloc[:40] + 1.0)],
                                           ignore_index=True))
    got = a.read("live-test", "laps")
    assert len(got) == len(laps) and not got.duplicated(["car", "lap"]).any()
    again = got.set_index(["car", "lap"]).loc[list(zip(laps["car"].iloc[:40], laps["lap"].iloc[:40])), "kph"]
    assert (again.to_numpy() == laps["kph"].iloc[:40].to_numpy() + 1.0).all(), "the later row wins"
