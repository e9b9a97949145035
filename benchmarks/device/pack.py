"""Pack a study's small outputs (no weights) into one tar.gz: the study folder and every run's
``publish.RUN_FILES`` -- what ``bcdet publish`` keeps of a run, and all a later call needs to resume.
``--improve``: the improvement ladder's instead (#31) -- its working folder ``<profile>/improve/``, the runs of
its derived profiles ``<profile>-improve-*/`` and the baseline's own run folders (the verdict's runs its
``studies/baseline/runs.csv`` names), weights left out alike: all a call needs to climb on without the verdict."""
import argparse
import tarfile
from pathlib import Path

import pandas as pd

from bcdet_helpers.research.publish import RUN_FILES

ap = argparse.ArgumentParser()
ap.add_argument("runs", type=Path)
ap.add_argument("profile")
ap.add_argument("dest")
ap.add_argument("--improve", action="store_true")
a = ap.parse_args()


def add_runs(tar, folder: Path, names=None):
    """Each finished run's files (an unfinished one, cut by the call's time, is left out: trained again later);
    ``names``: only those runs."""
    for run in sorted(p for p in folder.iterdir() if (p / "result.json").exists()):
        if names is not None and run.name not in names:
            continue
        for name in RUN_FILES:
            if (run / name).exists():
                tar.add(run / name, arcname=f"{folder.name}/{run.name}/{name}")


with tarfile.open(a.dest, "w:gz") as tar:
    if a.improve:
        work = a.runs / a.profile / "improve"
        tar.add(work, arcname=f"{a.profile}/improve", filter=lambda t: None if t.name.endswith(".pt") else t)
        for derived in sorted(a.runs.glob(f"{a.profile}-improve-*")):
            add_runs(tar, derived)
        baseline = work / "studies" / "baseline" / "runs.csv"
        if baseline.exists():
            add_runs(tar, a.runs / a.profile, names=set(pd.read_csv(baseline)["run"]))
    else:
        tar.add(a.runs / a.profile / "cv", arcname=f"{a.profile}/cv")
        add_runs(tar, a.runs / a.profile)
print("packed", a.dest, Path(a.dest).stat().st_size // 1024, "KiB")
