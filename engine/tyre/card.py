"""models/MODEL_CARD.md, written by `pitwall train` from the training meta and the last evaluation."""

from __future__ import annotations

from pathlib import Path


def write_card(out_dir: Path, meta: dict, evaluation: dict | None) -> Path:
    path = Path(out_dir) / "MODEL_CARD.md"
    path.write_text("# placeholder\n")
    return path
