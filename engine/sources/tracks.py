"""Track facts in one place: lengths, sector boundaries and pit-lane figures (official maps)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Track:
    """A circuit: length and sector lengths in metres, pit-lane time at the limit in s."""

    key: str
    name: str
    length_m: float
    sectors_m: tuple[float, float, float]
    pit_lane_s: float
    pit_loss_s: float | None = None   # measured in-lap + out-lap - 2 x median green lap

    @property
    def sector_starts_m(self) -> tuple[float, float, float]:
        """Lap distance at which each sector starts."""
        s1, s2, _ = self.sectors_m
        return (0.0, s1, s1 + s2)


# From shared/data/README.md (read off the organisers' official track maps).
TRACKS: dict[str, Track] = {
    t.key: t
    for t in (
        Track("barber", "Barber Motorsports Park", 3674.7, (1029.0, 1580.4, 1065.3), 34.0, 29.0),
        Track("cota", "Circuit of the Americas", 5498.3, (1308.8, 2240.0, 1949.5), 36.0, 32.4),
        Track("indianapolis", "Indianapolis Motor Speedway", 3925.2, (1364.3, 1386.9, 1174.0), 63.0),
        Track("road-america", "Road America", 6459.6, (2058.6, 2208.0, 2193.0), 52.0, 40.7),
        Track("sebring", "Sebring International Raceway", 6018.9, (1824.2, 1863.7, 2331.0), 39.0),
        Track("sonoma", "Sonoma Raceway", 4031.4, (1385.0, 1422.0, 1225.0), 45.0, 37.8),
    )
}


def track(key: str) -> Track:
    """The track with this key, or a ValueError naming the known ones."""
    try:
        return TRACKS[key]
    except KeyError:
        raise ValueError(f"unknown track {key!r}; known: {', '.join(sorted(TRACKS))}") from None
