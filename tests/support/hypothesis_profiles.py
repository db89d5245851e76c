"""Hypothesis settings for the suite: small and derandomized by default, deeper on request.

``default``: 60 examples a property, the same examples every run (the default suite must
stay fast and never flaky). ``deep``: 1000 random examples a property, for CI's extra step
(``HYPOTHESIS_PROFILE=deep pytest tests/test_properties.py``). No example database is
written: a failure prints the falsifying example and how to reproduce it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=60, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep", max_examples=1000, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
