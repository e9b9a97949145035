"""Fill ``.gpu/`` (ignored by git: echo /.gpu/ >> .git/info/exclude) with what a device call carries:
BUSI's file list (names, sizes, mtimes -- no pixels), the tensor cache and index built here from the
real files, and the commit. The real 111 MB do not fit the 64 MiB a call carries; the cache does.

    .venv/bin/python benchmarks/device/prepare.py          # then: run(command="bash benchmarks/device/run.sh", carry=[".gpu"])
"""
import argparse
import json
import shutil

from bcdet_helpers.data import locate_busi
from bcdet_helpers.data.cache import cache_path, load_cache
from bcdet_helpers.data.index import fingerprint, index_path, load_index
from bcdet_helpers.paths import project_root
from bcdet_helpers.runinfo import git_commit

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=int, default=64)
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
for f in (cache_path(a.size, 1), index_path(root)):
    shutil.copy2(f, out / "cache" / f.name)
(out / "commit").write_text(git_commit() or "unknown")  # the runs there record it (no .git travels)
print(f"{out}: {len(files)} files listed (fingerprint {fp}), cache + index copied")
