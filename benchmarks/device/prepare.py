"""Fill ``.gpu/`` (ignored by git: echo /.gpu/ >> .git/info/exclude) with what a device call carries:
BUSI's file list (names, sizes, mtimes -- no pixels), the tensor cache and index built here from the
real files, and the commit. The real 111 MB do not fit the 64 MiB a call carries; the cache does.

    .venv/bin/python benchmarks/device/prepare.py          # then: run(command="bash benchmarks/device/run.sh", carry=[".gpu"])

``--resume runs/paper`` also copies a study's finished records (config/history/result, cv/), so a
second call trains only what the first left (finished runs are taken from their recorded predictions).
"""
import argparse
import json
import shutil
import subprocess
from pathlib import Path

from bcdet_helpers.data import locate_busi
from bcdet_helpers.data.cache import cache_path, load_cache
from bcdet_helpers.data.index import fingerprint, load_index
from bcdet_helpers.paths import project_root, runs_dir

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--resume", default=None, help="a profile's runs folder whose finished records travel too")
a = ap.parse_args()
root = locate_busi()
out = project_root() / ".gpu"
(out / "cache").mkdir(parents=True, exist_ok=True)
load_index(root)
load_cache(root, a.size, 1)  # builds both when missing
fp = fingerprint(root)
files = [{"rel": f"{p.parent.name}/{p.name}", "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
         for p in sorted(root.glob("*/*.png"))]
(out / "manifest.json").write_text(json.dumps({"root": str(root), "fingerprint": fp, "files": files}))
for f in (cache_path(a.size, 1), runs_dir() / "cache" / f"index-{fp}.pkl"):
    shutil.copy2(f, out / "cache" / f.name)
(out / "commit").write_text(subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                           text=True, cwd=project_root()).stdout)
if a.resume:
    src = Path(a.resume)
    dest = out / "runs" / src.name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src / "cv", dest / "cv")
    for run in (r for r in src.iterdir() if (r / "result.json").exists()):
        (dest / run.name).mkdir(parents=True)
        for f in ("config.json", "history.csv", "result.json", "test-by-epoch.csv"):
            if (run / f).exists():
                shutil.copy2(run / f, dest / run.name / f)
print(f"{out}: {len(files)} files listed (fingerprint {fp}), cache + index copied"
      + (f", records of {src}" if a.resume else ""))
