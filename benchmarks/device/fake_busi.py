"""(device call) Recreate BUSI's file tree (names, sizes, mtimes; no pixels) where it was here, and put the tensor
cache and index built from the real files beside the code, so the study's fingerprint checks pass and
nothing is decoded: the real 111 MB do not fit the 64 MiB a device call carries. Training reads only
the cache; a check below refuses to go on if the cache or index would be rebuilt. Likewise BUS-BRA when
prepare.py found it: its table, empty files under its image names, and its scan-area cache, so every
study run predicts BUS-BRA from the cache built here from the real images (#30)."""
import json, os, shutil, sys
from pathlib import Path

here = Path.cwd() / ".gpu"  # what prepare.py wrote, carried with the call
m = json.loads((here / "manifest.json").read_text())
root = Path(m["root"])
if root.exists() and any(root.iterdir()):
    sys.exit(f"{root} exists already; not touching it")
for f in m["files"]:
    p = root / f["rel"]
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:
        fh.truncate(f["size"])
    os.utime(p, ns=(f["mtime_ns"], f["mtime_ns"]))
runs = Path(sys.argv[1])
(runs / "cache").mkdir(parents=True, exist_ok=True)
for c in (here / "cache").iterdir():
    shutil.copy2(c, runs / "cache" / c.name)

os.environ["BCDET_DATA"] = str(root)
os.environ["BCDET_RUNS"] = str(runs)
sys.path.insert(0, os.getcwd())
from bcdet_helpers.data.index import fingerprint, index_path  # noqa: E402
from bcdet_helpers.data.cache import load_cache  # noqa: E402

bb = m.get("busbra")
if bb:
    broot = Path(bb["root"])
    if broot.exists() and any(broot.iterdir()):
        sys.exit(f"{broot} exists already; not touching it")
    (broot / "Images").mkdir(parents=True, exist_ok=True)
    shutil.copy2(here / "bus_data.csv", broot / "bus_data.csv")
    for rel in bb["files"]:
        (broot / rel).touch()
    os.environ["BCDET_BUSBRA"] = str(broot)
fp = fingerprint(root)
assert fp == m["fingerprint"], f"fingerprint {fp} != {m['fingerprint']}"
assert index_path(root).exists()
for size in sorted({int(c.name.split("-")[1][:-2]) for c in (here / "cache").glob("images-*.pt")}):
    d = load_cache(root, size, 1)
    assert d["meta"]["loaded_from_cache"], f"the {size}px cache would be rebuilt"
    if bb:
        from bcdet_helpers.research.study.external import external_images  # noqa: E402
        from bcdet_helpers.data import cache as _cache  # noqa: E402
        _cache.load_scan_areas = None  # a rebuild from the empty files would fail loudly here, not write a cache
        images, table = external_images(size, 1)
        print(f"BUS-BRA at {broot}: {len(images)} images from the {size}px cache", flush=True)
print(f"fake BUSI tree at {root}: {len(m['files'])} files, fingerprint {fp}; caches load", flush=True)
