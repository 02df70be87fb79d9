"""The tyre model: pace degradation learned from real GR Cup races (XGBoost -> ONNX), per-corner
friction-energy wear, laps to the cliff (the first lap a stop pays for itself) with an interval, and radio-ready explanations.

Model constants live here so that training, evaluation and the live engine agree on them.
"""

from __future__ import annotations

# Fuel burn makes a car faster as the race goes on. GR Cup sprints have no fuel channel, so this
# is an ASSUMPTION, not a measurement: ~0.8 kg of fuel per lap (a 2.4 l GR86 racing ~45 min on
# ~25 l) x ~0.035 s per kg per lap (the usual lap-time mass sensitivity of a ~1300 kg car) is
# about 0.03 s per lap. It cannot be separated from track evolution and tyre wear from pace
# alone (all three grow with the lap number in a no-stop sprint); see models/MODEL_CARD.md.
FUEL_S_PER_LAP = 0.03

INTERVAL = (0.10, 0.90)  # the 80 % prediction interval
FIELD_WINDOW_S = 120.0   # the field's recent pace: laps completed in the last 2 minutes
SEED = 7
