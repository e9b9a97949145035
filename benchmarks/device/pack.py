"""Pack a study's small outputs (no weights) into one tar.gz: the study folder and every run's
``publish.RUN_FILES`` -- what ``bcdet publish`` keeps of a run, and all a later call needs to resume."""
import sys
import tarfile
from pathlib import Path

from bcdet_helpers.research.publish import RUN_FILES

runs, profile, dest = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with tarfile.open(dest, "w:gz") as tar:
    tar.add(runs / profile / "cv", arcname=f"{profile}/cv")
    for run in sorted(p for p in (runs / profile).iterdir() if p.is_dir() and p.name != "cv"):
        for name in RUN_FILES:
            if (run / name).exists():
                tar.add(run / name, arcname=f"{profile}/{run.name}/{name}")
print("packed", dest, Path(dest).stat().st_size // 1024, "KiB")
