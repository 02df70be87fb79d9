"""The race vocabulary, defined once: flags, laps, stints, sectors, tyre age, the clean-lap rule,
corner names, g-force events and GPS -> metres. Pure functions over numpy/pandas; every other
package takes these names and rules from here.

flag.py     Flag: green / full-course yellow / safety car / VSC / finish, parsed from any source
lap.py      Lap, Sector, Stint; tyre age (FastF1's TyreLife) and the clean-lap rule
corners.py  CORNERS (fl, fr, rl, rr) and their names
braking.py  heavy-braking and hard-cornering events (one threshold, one sign convention each)
geo.py      GPS (lat/lon degrees) -> metres east/north of a reference point
"""
