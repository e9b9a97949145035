"""Pack a study's small outputs (no weights) into one tar.gz: the study folder and every run's
``publish.RUN_FILES`` -- what ``bcdet publish`` keeps of a run, and all a later call needs to resume.
``--improve``: the improvement ladder's instead (#31) -- its working folder ``<profile>/improve/`` and the
runs of its derived profiles ``<profile>-improve-*/``, weights left out alike."""
import argparse
import tarfile
from pathlib import Path

from bcdet_helpers.research.publish import RUN_FILES

ap = argparse.ArgumentParser()
ap.add_argument("runs", type=Path)
ap.add_argument("profile")
ap.add_argument("dest")
ap.add_argument("--improve", action="store_true")
a = ap.parse_args()


def add_runs(tar, folder: Path):
    """Each finished run's files (an unfinished one, cut by the call's time, is left out: trained again later)."""
    for run in sorted(p for p in folder.iterdir() if (p / "result.json").exists()):
        for name in RUN_FILES:
            if (run / name).exists():
                tar.add(run / name, arcname=f"{folder.name}/{run.name}/{name}")


with tarfile.open(a.dest, "w:gz") as tar:
    if a.improve:
        work = a.runs / a.profile / "improve"
        tar.add(work, arcname=f"{a.profile}/improve", filter=lambda t: None if t.name.endswith(".pt") else t)
        for derived in sorted(a.runs.glob(f"{a.profile}-improve-*")):
            add_runs(tar, derived)
    else:
        tar.add(a.runs / a.profile / "cv", arcname=f"{a.profile}/cv")
        add_runs(tar, a.runs / a.profile)
print("packed", a.dest, Path(a.dest).stat().st_size // 1024, "KiB")
