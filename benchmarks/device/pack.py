"""Pack a study's small outputs (no weights) into one tar.gz: the study folder and every run's
config/history/result/test record -- what `bcdet publish` keeps of a run."""
import sys, tarfile
from pathlib import Path

runs, profile, dest = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
keep = {"config.json", "history.csv", "result.json", "test-by-epoch.csv"}
with tarfile.open(dest, "w:gz") as tar:
    tar.add(runs / profile / "cv", arcname=f"{profile}/cv")
    for run in sorted(p for p in (runs / profile).iterdir() if p.is_dir() and p.name != "cv"):
        for f in run.iterdir():
            if f.name in keep:
                tar.add(f, arcname=f"{profile}/{run.name}/{f.name}")
print("packed", dest, Path(dest).stat().st_size // 1024, "KiB")
