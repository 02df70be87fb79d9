"""The session archive on disk: Parquet partitioned by session and table, appended part by part.

Layout under the data directory (PITWALL_DATA_DIR/archive):

    session=<id>/<table>/part-<time_ns>-<pid>.parquet

Parquet cannot be appended to, so every flush writes one new part: to a temporary name in the
same folder, fsync'd, then renamed (a reader never sees half a file; a crash leaves at most a
`.tmp` that readers ignore). Rows are keyed (TABLES) so that a redelivered entry written twice
reads back once: the reader keeps the last row of each key.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# table -> the columns that identify a row (duplicates on read keep the last row written)
TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key",),                     # key, value (strings): track, race, date, sources, ...
    "laps": ("car", "lap"),               # one row per car-lap: timing, sectors, flags, pit
    "results": ("car",),                  # the official classification, where the source has one
    "telemetry": ("car", "t"),             # raw samples as received (t: epoch or race s)
    "tyre": ("car", "lap"),               # the tyre model's outputs after each lap
    "strategy": ("car", "lap"),           # each strategy call (inputs, race count, result)
    "alerts": ("car", "lap", "type"),     # driver coaching alerts
    "flags": ("lap", "flag"),             # flag state by leader lap
    "weather": ("t",),                    # air / track temperature
    "lap_records": ("car", "lap"),        # the process stage's lap records (telemetry cars)
}
_SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class ArchiveError(Exception):
    """A clear failure of the archive: names what (session, table, file) and why."""


def check_session_id(session: str) -> str:
    """The session id if it is safe as a folder name, else an ArchiveError saying why."""
    if not _SESSION_RE.match(str(session)):
        raise ArchiveError(f"session id {session!r}: only letters, digits, '.', '_' and '-' (1-64 characters)")
    return str(session)


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write df to path through a temporary file and a rename; nothing is left on failure."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except (pa.ArrowException, TypeError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {path}: {exc}") from exc


def replace_dir(staging: Path, final: Path) -> None:
    """Put a fully written staging folder in place of `final` (renames only; an older `final` is
    moved aside first and removed after), so readers see the old folder or the new, never half."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}-{time.time_ns()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class Archive:
    """Read and write archived sessions under one root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings) -> "Archive":
        """The archive of PITWALL_DATA_DIR (settings.data_dir / 'archive')."""
        return cls(Path(settings.data_dir) / "archive")

    def session_dir(self, session: str) -> Path:
        """The folder holding one archived session's files."""
        return self.root / f"session={check_session_id(session)}"

    # -- writing --------------------------------------------------------------------------
    def append(self, session: str, table: str, df: pd.DataFrame) -> Path | None:
        """Add rows to a table of a session as one new part file; None when df is empty."""
        if table not in TABLES:
            raise ArchiveError(f"table {table!r}: not one of {', '.join(TABLES)}")
        if df is None or df.empty:
            return None
        return self.append_into(self.session_dir(session), table, df)

    def write_session(self, session: str, tables: dict[str, pd.DataFrame]) -> Path:
        """Write a whole session at once (import): built in a temporary folder, then renamed into
        place, replacing an older archive of the same id. Nothing half-written is left."""
        final = self.session_dir(session)
        tmp = self.root / f".tmp-{session}-{os.getpid()}-{time.time_ns()}"
        try:
            staging = Archive(tmp)
            for table, df in tables.items():
                if df is not None and not df.empty:
                    staging.append_into(tmp, table, df)
            replace_dir(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArchiveError(f"cannot write session {session!r} under {self.root}: {exc.strerror or exc}") from exc
        except ArchiveError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def append_into(self, folder: Path, table: str, df: pd.DataFrame) -> Path:
        """One part file of `table` directly under `folder` (a staging session folder)."""
        sub = Path(folder) / table
        try:
            sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create {sub}: {exc.strerror or exc}") from exc
        path = sub / f"part-{time.time_ns()}-{os.getpid()}.parquet"
        _atomic_parquet(df, path)
        return path

    # -- reading --------------------------------------------------------------------------
    def sessions(self) -> list[str]:
        """Archived session ids, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name.split("=", 1)[1] for p in self.root.glob("session=*") if p.is_dir())

    def has(self, session: str) -> bool:
        """Whether this session is already in the archive."""
        return self.session_dir(session).is_dir()

    def require(self, session: str) -> Path:
        """The session's folder, or an ArchiveError naming the known sessions."""
        folder = self.session_dir(session)
        if not folder.is_dir():
            known = ", ".join(self.sessions()) or "none"
            raise ArchiveError(f"session {session!r} is not in the archive {self.root} (archived: {known})")
        return folder

    def tables(self, session: str) -> list[str]:
        """The tables this session has rows in."""
        folder = self.require(session)
        return [t for t in TABLES if any((folder / t).glob("part-*.parquet"))]

    def read(self, session: str, table: str) -> pd.DataFrame:
        """Every row of a table (empty frame when the session has none); a corrupt or partial
        part raises an ArchiveError naming the file and the reason."""
        if table not in TABLES:
            raise ArchiveError(f"table {table!r}: not one of {', '.join(TABLES)}")
        folder = self.require(session) / table
        for _attempt in range(3):    # a part compacted away while we read: list the parts again
            try:
                frames = [self._part(session, table, p) for p in sorted(folder.glob("part-*.parquet"))]
                break
            except FileNotFoundError:
                continue
        else:
            raise ArchiveError(f"session {session!r} table {table!r}: its parts kept changing while being read")
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        key = [k for k in TABLES[table] if k in df.columns]
        if key:     # also within one part: an entry reclaimed while a flush failed is buffered twice
            df = df.drop_duplicates(key, keep="last")
        if "car" in df.columns:
            df["car"] = df["car"].astype(str)
        sort = [k for k in key if k in df.columns]
        return df.sort_values(sort, kind="stable").reset_index(drop=True) if sort else df

    @staticmethod
    def _part(session: str, table: str, part: Path) -> pd.DataFrame:
        if not part.exists():
            raise FileNotFoundError(part)
        try:
            return pq.read_table(part).to_pandas()
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise ArchiveError(f"session {session!r} table {table!r}: {part.name} is corrupt or partial "
                               f"({exc})") from exc

    def compact(self, session: str) -> int:
        """Merge each table's parts into one (new part first, then the old ones removed: a reader
        meanwhile sees duplicates, which collapse by key). Returns the parts removed."""
        removed = 0
        for table in self.tables(session):
            parts = sorted((self.session_dir(session) / table).glob("part-*.parquet"))
            if len(parts) < 2:
                continue
            self.append(session, table, self.read(session, table))
            for p in parts:
                p.unlink()
                removed += 1
        return removed

    def meta(self, session: str) -> dict[str, str]:
        """The session's meta table as a dict."""
        m = self.read(session, "meta")
        return dict(zip(m["key"], m["value"])) if not m.empty else {}
