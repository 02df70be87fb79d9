"""`pitwall export` (engine/commands/archive.py)."""

from engine.commands.archive import configure_export as configure, run_export as run

__all__ = ["configure", "run"]
