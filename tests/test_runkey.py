"""RunKey: the one spelling of a run's identity; every run name on record reads back through it."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bcdet_helpers.paths import project_root
from bcdet_helpers.profiles import PROFILES
from bcdet_helpers.runkey import AUGMENTED, RunKey

RESULTS = project_root() / "results"


def _copies(folder: Path) -> int:
    """The ladder's test copies of the study or reproduction a recorded folder came from."""
    for design in (folder / "design.json", folder.parent / "design.json"):
        if design.exists():
            return int(json.loads(design.read_text())["profile"].get("ladder_test_copies", 0))
    name = folder.name.split("-")[0]
    return PROFILES[name].ladder_test_copies if name in PROFILES else 2


def _recorded_names():
    """(name, form, test copies) of every run name under results/: run folders, study CSV stems, runs.csv rows."""
    for runs in sorted(RESULTS.glob("**/runs")):
        if runs.is_dir():
            for d in sorted(p for p in runs.iterdir() if p.is_dir()):
                yield d.name, "folder", _copies(runs.parent)
    for study in sorted(p.parent for p in RESULTS.glob("**/folds.csv")):
        for part in ("oof", "val", "inflation"):
            for csv in sorted((study / part).glob("*.csv")):
                yield csv.stem, "name", _copies(study)
        if (study / "runs.csv").exists():
            for name in pd.read_csv(study / "runs.csv")["run"].dropna():
                yield name, "folder", _copies(study)


def test_every_recorded_run_name_round_trips():
    names = list(_recorded_names())
    assert len(names) > 500  # the committed studies hold hundreds
    for name, form, copies in names:
        key = RunKey.parse(name)
        assert (key.folder(copies) if form == "folder" else key.name) == name, name


def test_the_ladder_kind_is_the_random_split_with_test_copies():
    key = RunKey("switching", AUGMENTED, 3, 1)
    assert key.fold_kind == "random" and key.test_copies(2) == 2 and RunKey("switching", "random").test_copies(2) == 0
    assert key.name == "switching-augmented-fold3-seed1"
    assert key.folder(2) == "switching-random-fold3-seed1-testcopies2"
    assert RunKey.parse(key.folder(2)) == RunKey.parse(key.name) == key
    assert RunKey.of_run("switching", "random", 3, 1, test_copies=2) == key
    assert RunKey.find("trial003-seed0") is None and RunKey.find("README.md") is None
    with pytest.raises(ValueError, match="not a run name"):
        RunKey.parse("switching-grouped-fold0-seed0-testcopies2")  # copies of test images need the random split
    with pytest.raises(ValueError, match="kind"):
        RunKey("switching", "shuffled")
