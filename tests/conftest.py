"""Shared fixtures: the dataset every test uses and an isolated runs/ folder.

``busi_dir`` is the real BUSI copy when ``BCDET_DATA`` (or ``data/``) has one -- CI points it at the
shared copy -- and otherwise a mini-BUSI generated once per session, so the suite always runs.
"""
from __future__ import annotations

import pytest

from bcdet_helpers.data.locate import find_busi
from bcdet_helpers.paths import use_runs_dir
from fakebusi import make_busi


@pytest.fixture(scope="session", autouse=True)
def isolated_runs(tmp_path_factory):
    """Keep every test's runs, caches and executed notebooks out of the user's runs/."""
    runs = tmp_path_factory.mktemp("runs")
    with use_runs_dir(runs):
        yield runs


def _found_or_skip(found, what: str, variable: str):
    if found is None:
        pytest.skip(f"real {what} not found (set {variable}); the generated fixtures cover this path")
    return found


@pytest.fixture(scope="session")
def real_busi():
    """The real BUSI folder, or skip (tests marked ``realdata``)."""
    return _found_or_skip(find_busi(), "BUSI", "BCDET_DATA")


@pytest.fixture(scope="session")
def real_busbra():
    """The real BUS-BRA folder, or skip (the generated copies of tests/fakebusbra.py cover the same paths)."""
    from bcdet_helpers.data.busbra import find_busbra

    return _found_or_skip(find_busbra(), "BUS-BRA", "BCDET_BUSBRA")


@pytest.fixture(scope="session")
def busi_dir(tmp_path_factory):
    """Real BUSI if present, else a generated mini-BUSI (30/20/15 images with duplicates)."""
    found = find_busi()
    if found is not None:
        return found
    return make_busi(tmp_path_factory.mktemp("busi"), {"benign": 30, "malignant": 20, "normal": 15})


@pytest.fixture
def mini_busi(tmp_path):
    """A fresh, small, writable mini-BUSI (6 images per class) for tests that break things."""
    return make_busi(tmp_path, 6)
