"""The external test inside the study: every run's predictions on BUS-BRA, recorded like its
out-of-fold ones (issue #30).

Right after a run's test fold is predicted, its final weights (``last.pt``, the study's weights
rule; plain and flipped left-right) predict every BUS-BRA image, cut to its scan area and resized like
BUSI (:func:`~bcdet_helpers.data.cache.load_scan_areas`), into ``external/<run>.csv.gz`` of the study
folder (gzip: 1,875 rows a run, about 40 kB, small enough to commit; patient and scanner are joined from
BUS-BRA's own table by ``file``).
Each arm's external result then has the study's fold x seed spread and is paired across arms like the
internal one; the threshold it is scored at is chosen on the run's BUSI validation images
(``val/<run>.csv``) and carried over (:func:`~bcdet_helpers.metrics.choose_threshold`), never chosen
on BUS-BRA. Nothing is chosen on these images: they are a test set.

Without a BUS-BRA copy (``BCDET_BUSBRA`` or ``data/BUS-BRA``) the study runs as before and says so
once; a run recorded without its external predictions gets them when its weights are there.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...busi import CLASSES
from ...profiles import DEFAULTS
from ...runinfo import write_atomic
from .files import PROBA_DECIMALS, external_csv

EXTERNAL_COLUMNS = (["file", "y", "kind", "fold", "seed", "arm", "epoch"]
                    + [f"p_{c}" for c in CLASSES] + [f"p_{c}_hflip" for c in CLASSES])
WEIGHTS_EXTERNAL = "last"  # the study's weights rule: the final weights, no selection on a noisy curve


def external_cache_path(image_size: int, channels: int, resize: str = DEFAULTS.resize) -> Path:
    """BUS-BRA's tensor cache beside BUSI's: ``runs/cache/busbra-<S>px-<C>ch[-<filter>].pt``."""
    from ...data.cache import cache_path

    busi = cache_path(image_size, channels, resize)
    return busi.with_name(busi.name.replace("images-", "busbra-"))


_HELD: dict = {}  # (copy, cache file) -> (images, table): read once per process, not once per study run


def external_images(image_size: int, channels: int, resize: str = DEFAULTS.resize):
    """``(uint8 images (N, C, S, S), table)`` of BUS-BRA at this size, or ``None`` without a copy. Cropped
    and resized once (filter ``resize``, a profile's), then cached beside BUSI's tensors
    (``runs/cache/busbra-<S>px-<C>ch.pt``, ``...ch-<filter>.pt`` for another filter than the default); a cache
    of another copy (other files) is rebuilt. Held in memory after the first call of a process, so a study
    reads the table and the cache once, not once per run."""
    import torch

    from ...data.busbra import find_busbra, read_busbra
    from ...data.cache import load_scan_areas

    root = find_busbra()
    if root is None:
        return None
    cache = external_cache_path(image_size, channels, resize)
    if (str(root), str(cache)) in _HELD:
        return _HELD[(str(root), str(cache))]
    table = read_busbra(root)
    table = table[table["exists"]].reset_index(drop=True)
    files = list(table["file"])
    held = torch.load(cache, weights_only=True) if cache.exists() else {}
    if held.get("files") == files:
        images = held["images"]
    else:
        images, _ = load_scan_areas(list(table["path"]), image_size, channels, resize)
        write_atomic(cache, lambda tmp: torch.save({"images": images, "files": files}, tmp))
    _HELD[(str(root), str(cache))] = images, table
    return images, table


def predict_external(run_dir: str | Path, key, images, table: pd.DataFrame, device="cpu") -> pd.DataFrame:
    """One run's BUS-BRA predictions (final weights, plain and flipped) as :data:`EXTERNAL_COLUMNS`."""
    import torch

    from ...checkpoints import load_checkpoint
    from ...evaluate import predict_proba

    run_dir = Path(run_dir)
    batch = torch.cat([images, torch.flip(images, dims=[-1])])
    model, meta = load_checkpoint(run_dir / f"{WEIGHTS_EXTERNAL}.pt", device=device)
    proba = np.round(predict_proba(model, batch, meta["mean"], meta["std"], device=device), PROBA_DECIMALS)
    plain, flipped = proba[: len(images)], proba[len(images):]
    df = pd.DataFrame({"file": table["file"], "y": table["y"], "kind": key.kind, "fold": key.fold,
                       "seed": key.seed, "arm": key.arm, "epoch": meta.get("epoch")})
    for k, c in enumerate(CLASSES):
        df[f"p_{c}"] = plain[:, k]
    for k, c in enumerate(CLASSES):
        df[f"p_{c}_hflip"] = flipped[:, k]
    return df[EXTERNAL_COLUMNS]


def record_external(prof, key, run_dir: Path, out: Path, device="cpu") -> bool:
    """Write ``out/external/<run>.csv.gz`` for one finished run when BUS-BRA is here and the run's weights
    are; returns whether it was written."""
    if not (Path(run_dir) / "last.pt").exists():
        return False
    found = external_images(prof.image_size, prof.channels, prof.resize)
    if found is None:
        return False
    images, table = found
    df = predict_external(run_dir, key, images, table, device=device)
    write_atomic(external_csv(out, key), lambda tmp: df.to_csv(tmp, index=False, compression="gzip"))
    return True
