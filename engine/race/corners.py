"""The four tyres, in the order every array and dict of them uses."""

from __future__ import annotations

CORNERS: tuple[str, ...] = ("fl", "fr", "rl", "rr")
CORNER_NAMES: dict[str, str] = {"fl": "Front-left", "fr": "Front-right", "rl": "Rear-left", "rr": "Rear-right"}
