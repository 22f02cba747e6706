"""Skipping a test whose service (PostgreSQL, Chromium, the benchmark data dir) is missing, or
failing it when the run promised the services.

``scripts/test.sh`` starts every service the suite needs and sets ``GAPMETER_REQUIRE_SERVICES=1``
(CI runs it): there a missing service is a broken setup, and a skip would hide the tests that
need it while the run still looked green. A plain ``pytest`` on a laptop without them skips.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "GAPMETER_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def service_missing(reason: str) -> NoReturn:
    """``pytest.skip(reason)``, or ``pytest.fail`` when ``GAPMETER_REQUIRE_SERVICES=1``."""
    if services_required():
        pytest.fail(f"{reason} [{REQUIRE_ENV}=1: a test that needs a service may not be skipped]", pytrace=False)
    pytest.skip(reason)
