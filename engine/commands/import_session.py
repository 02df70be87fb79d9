"""`pitwall import` (engine/commands/archive.py)."""

from engine.commands.archive import configure_import as configure, run_import as run

__all__ = ["configure", "run"]
