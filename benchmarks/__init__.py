"""PitWall benchmarks: `pitwall bench NAME --json` runs benchmarks/NAME.py."""
