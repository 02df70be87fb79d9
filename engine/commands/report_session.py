"""`pitwall report` (engine/commands/archive.py)."""

from engine.commands.archive import configure_report as configure, run_report as run

__all__ = ["configure", "run"]
