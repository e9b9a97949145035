"""Fill ``.gpu/`` (ignored by git: echo /.gpu/ >> .git/info/exclude) with what a device call carries:
BUSI's file list (names, sizes, mtimes -- no pixels), the tensor cache and index built here from the
real files, the commit, and -- when BUS-BRA is here (``BCDET_BUSBRA`` or ``data/BUS-BRA``) -- its table
(``bus_data.csv``), its image names and its scan-area tensor cache at the profile's size, so every study
run there predicts BUS-BRA as it does here (#30). The real 111 MB (BUSI) and 300 MB (BUS-BRA) do not fit
the 64 MiB a call carries; the caches (3 and 8 MB at 64 px) do. ``--sizes 96 128``: the caches at those sides
instead, for the improvement ladder's larger inputs (#31; xz: 5 + 12 MB at 96 px, 9 + 20 MB at 128 px).

    .venv/bin/python benchmarks/device/prepare.py          # then: run(command="bash benchmarks/device/run.sh", carry=[".gpu"])
"""
import argparse
import json
import lzma
import shutil

from bcdet_helpers.data import locate_busi
from bcdet_helpers.data.busbra import find_busbra, read_busbra
from bcdet_helpers.data.cache import cache_path, load_cache
from bcdet_helpers.data.index import fingerprint, index_path, load_index
from bcdet_helpers.paths import project_root
from bcdet_helpers.profiles import get_profile
from bcdet_helpers.research.study.external import external_cache_path, external_images
from bcdet_helpers.runinfo import git_commit

ap = argparse.ArgumentParser()
ap.add_argument("--profile", default="paper", help="the caches are at this profile's size, channels and filter")
ap.add_argument("--no-busbra", action="store_true",
                help="leave BUS-BRA behind (a tuning call needs none, and Optuna's wheels need the room)")
ap.add_argument("--sizes", type=int, nargs="+", default=[],
                help="carry the caches at these image sides instead of the profile's (the improvement ladder's larger "
                     "inputs, #31: a call that climbs on from the resolution rung needs only those)")
a = ap.parse_args()
prof = get_profile(a.profile)
root = locate_busi()
out = project_root() / ".gpu"
(out / "cache").mkdir(parents=True, exist_ok=True)
for old in (out / "cache").glob("*.xz"):  # an earlier prepare's caches (another size, an older index): not carried
    old.unlink()
sizes = sorted(set(a.sizes or [prof.image_size]))
load_index(root)
for size in sizes:
    load_cache(root, size, prof.channels, resize=prof.resize)  # builds both when missing
fp = fingerprint(root)
files = [{"rel": f"{p.parent.name}/{p.name}", "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
         for p in sorted(root.glob("*/*.png"))]
manifest = {"root": str(root), "fingerprint": fp, "files": files}
for f in (*(cache_path(size, prof.channels, prof.resize) for size in sizes), index_path(root)):
    shutil.copy2(f, out / "cache" / f.name)
busbra = None if a.no_busbra else find_busbra()
if busbra is not None:
    for size in sizes:
        external_images(size, prof.channels, prof.resize)  # builds the cache when missing
        cache = external_cache_path(size, prof.channels, prof.resize)
        shutil.copy2(cache, out / "cache" / cache.name)
    shutil.copy2(busbra / "bus_data.csv", out / "bus_data.csv")
    table = read_busbra(busbra)
    manifest["busbra"] = {"root": str(busbra), "files": list(table.loc[table["exists"], "file"])}
for f in (out / "cache").glob("*"):  # xz: 22 -> 15 MB, so the caches and the checkout fit the 64 MiB a call carries
    if f.suffix != ".xz":
        with open(f, "rb") as src, lzma.open(f.with_name(f.name + ".xz"), "wb", preset=6) as dst:
            shutil.copyfileobj(src, dst)
        f.unlink()
(out / "manifest.json").write_text(json.dumps(manifest))
(out / "commit").write_text(git_commit() or "unknown")  # the runs there record it (no .git travels)
print(f"{out}: {len(files)} BUSI files listed (fingerprint {fp}), cache(s) at {sizes} px + index copied; "
      + (f"BUS-BRA: {len(manifest['busbra']['files'])} images listed, table and cache copied" if busbra else
         ("BUS-BRA left behind (--no-busbra)" if a.no_busbra else "no BUS-BRA here") + ": the runs there will not predict it"))
