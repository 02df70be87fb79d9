"""The compiled kernel's cache stays valid: numba keys the cache of kernel.races / kernel.run on
kernel.py's text only, so kernel.py carries a digest of the step modules it calls."""

from __future__ import annotations

import hashlib

from engine.settings import REPO_ROOT
from engine.strategy import kernel


def test_kernel_carries_the_digest_of_the_steps_it_calls():
    src = b"".join((REPO_ROOT / "engine" / "strategy" / name).read_bytes()
                   for name in ("kernel_inputs.py", "lap_steps.py", "sc_steps.py"))
    digest = hashlib.sha256(src).hexdigest()[:16]
    assert kernel.STEPS_DIGEST == digest, (
        f"set STEPS_DIGEST = {digest!r} in engine/strategy/kernel.py (else numba runs its stale cached kernel)")
