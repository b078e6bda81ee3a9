"""Hypothesis profiles for the fuzz tests.

``ci`` (the default) keeps ``pytest tests/fuzz`` to well under a minute;
``long`` is for hunting: ``HYPOTHESIS_PROFILE=long pytest tests/fuzz`` (see
``scripts/fuzz``). Every example does bounded work, so no deadline is set:
the per-test timeout (``timeout`` in pyproject.toml) catches a hang.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=200, database=None, **_COMMON)
settings.register_profile("long", max_examples=20000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
