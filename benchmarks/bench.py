"""Speed, side by side in one run: our training epoch vs the pure-compute floor vs the tutorial pipeline.

    make bench                                  # paper profile (64 x 64, batch 128, width 64)
    .venv/bin/python benchmarks/bench.py --profile laptop --repeats 2

What is measured (all on the BUSI training part of the grouped split, seed 0, same model, same
batch size, Adam):

* ``floor``    -- the model's own forward + backward + optimizer step over preloaded, normalised
                 float tensors: no augmentation, no validation, no bookkeeping. Nothing can beat it.
* ``bcdet``    -- one epoch of :func:`bcdet_helpers.train.fit` as a run does it: uint8 tensors resident
                 on the device, on-device augmentation, then validation (``bcdet_train`` is the same
                 epoch without its validation pass, which is timed on its own).
* ``tutorial`` -- the pipeline most BUSI notebooks copy: ``torchvision.datasets.ImageFolder`` + PIL
                 decode and resize of every PNG in every epoch + ``DataLoader(num_workers=2)``.

plus the tensor cache's build and load time and, when CUDA is present, seconds per epoch and per
full ``paper`` run. Results go to ``benchmarks/results/<host>.json`` and ``.md``; each line carries
the versions and device it came from (:func:`bcdet_helpers.runinfo.environment_info`).
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bcdet_helpers.data import load_split_data, locate_busi
from bcdet_helpers.data.cache import load_cache
from bcdet_helpers.data.images import is_mask
from bcdet_helpers.device import choose_device
from bcdet_helpers.model import build_model
from bcdet_helpers.paths import use_runs_dir
from bcdet_helpers.profiles import Phase, get_profile, schedule
from bcdet_helpers.runinfo import environment_info, write_json
from bcdet_helpers.train import fit

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def warm_up(model, opt, n: int, prof, device) -> None:
    """One untimed step per batch shape an epoch will see (full batches and the last, partial one),
    so one-off costs (kernel selection, optimizer state) count for no pipeline."""
    shapes = {min(prof.batch_size, n), n % prof.batch_size or prof.batch_size}
    for b in shapes:
        x = torch.randn(b, prof.channels, prof.image_size, prof.image_size, device=device)
        loss = F.cross_entropy(model(x), torch.zeros(b, dtype=torch.long, device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def floor_epoch(prof, data, device) -> float:
    """Forward + backward + step over the preloaded, normalised training tensors."""
    torch.manual_seed(0)
    model = build_model(prof).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data.part("train")
    x, y = data.normalize(x).to(device), y.to(device)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(device)
    bs = prof.batch_size

    def step(idx):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    warm_up(model, opt, len(x), prof, device)
    return timed(lambda: [step(perm[s:s + bs]) for s in range(0, len(x), bs)])


def bcdet_epoch(prof, data, device) -> tuple[float, float]:
    """One epoch of the project's own ``fit``; returns (epoch seconds, validation seconds)."""
    torch.manual_seed(0)
    model = build_model(prof)
    fit(model, data, [Phase("adam", 1e-3, 1)], batch_size=prof.batch_size, seed=0, device=device,
        augment=prof.augmentation, progress=False)  # warm-up epoch
    result = fit(model, data, [Phase("adam", 1e-3, 1)], batch_size=prof.batch_size, seed=1,
                 device=device, augment=prof.augmentation, progress=False)
    epoch = float(result.history["seconds"].iloc[0])
    xv, _ = data.part("val")
    xv = data.normalize(xv).to(device)
    model.eval()
    with torch.inference_mode():
        model(xv[:8])
        val = timed(lambda: model(xv))
    return epoch, val


def tutorial_epoch(prof, data, device, root: Path, workers: int = 2) -> float:
    """The ImageFolder + PIL-resize-every-epoch + DataLoader pipeline, on the same training files."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.Grayscale(prof.channels),
        transforms.Resize((prof.image_size, prof.image_size)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([data.mean] * prof.channels, [data.std] * prof.channels),
    ])
    # masks sit beside the images in BUSI; the usual notebook forgets to drop them -- we don't.
    folder = datasets.ImageFolder(str(root), transform=tf, is_valid_file=lambda p: p.endswith(".png") and not is_mask(p))
    train_files = set(data.files_of("train"))
    keep = [i for i, (p, _) in enumerate(folder.samples) if Path(p).relative_to(root).as_posix() in train_files]
    loader = DataLoader(Subset(folder, keep), batch_size=prof.batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model(prof).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    warm_up(model, opt, len(keep), prof, device)

    def epoch():
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return timed(epoch)


def cache_times(prof, root: Path) -> dict:
    """Build the tensor cache from the PNGs in a scratch runs/ folder, then load it three times."""
    with tempfile.TemporaryDirectory() as scratch, use_runs_dir(scratch):
        load_cache(root, prof.image_size, prof.channels)  # index (and near-duplicate pass) first
        build = timed(lambda: load_cache(root, prof.image_size, prof.channels, rebuild=True))
        load = min(timed(lambda: load_cache(root, prof.image_size, prof.channels)) for _ in range(3))
    return {"cache_build_s": build, "cache_load_s": load}


def cuda_run(prof, data) -> dict:
    """Seconds per epoch and per full run of the ``switching`` schedule on CUDA."""
    torch.manual_seed(0)
    model = build_model(prof)
    phases = schedule("switching", prof.epochs)
    fit(model, data, [Phase("adam", 1e-3, 1)], batch_size=prof.batch_size, seed=0, device="cuda", progress=False)
    t0 = time.perf_counter()
    result = fit(build_model(prof), data, phases, batch_size=prof.batch_size, seed=0, device="cuda", progress=False)
    torch.cuda.synchronize()
    return {"cuda_run_s": time.perf_counter() - t0, "cuda_epoch_s": float(result.history["seconds"].median()),
            "cuda_epochs": len(result.history)}


def markdown(rec: dict) -> str:
    r = rec["results"]
    env = rec["environment"]
    where = env.get("gpu") or f"{env.get('cpu')} ({env.get('torch_threads')} torch threads, {env.get('cpu_count')} cores)"
    lines = [
        f"Profile `{rec['profile']}` ({rec['config']}), {rec['n_train']} training images, "
        f"device {env['device']} — {where}, torch {env['versions']['torch']}, host `{env['host']}`, "
        f"{rec['repeats']} repeat(s), best of each.",
        "",
        "| pipeline | s / epoch | vs floor |",
        "| --- | ---: | ---: |",
        f"| pure compute floor (fwd + bwd + step, preloaded) | {r['floor_s']:.2f} | 1.00 |",
        f"| bcdet `fit`, training pass only | {r['bcdet_train_s']:.2f} | {r['bcdet_train_s'] / r['floor_s']:.3f} |",
        f"| bcdet `fit`, whole epoch (incl. validation) | {r['bcdet_epoch_s']:.2f} | {r['bcdet_epoch_s'] / r['floor_s']:.3f} |",
        f"| tutorial: ImageFolder + PIL resize + DataLoader(2 workers) | {r['tutorial_s']:.2f} | {r['tutorial_s'] / r['floor_s']:.3f} |",
        "",
        f"- bcdet epoch vs tutorial epoch: **{r['tutorial_s'] / r['bcdet_epoch_s']:.2f}x faster** "
        f"(target >= 1.3x); bcdet training pass / floor: **{r['bcdet_train_s'] / r['floor_s']:.3f}** (target <= 1.05).",
        f"- tensor cache: build {r['cache_build_s']:.1f} s from the PNGs, load {r['cache_load_s'] * 1000:.0f} ms (target < 1 s).",
    ]
    if "cuda_run_s" in r:
        lines.append(f"- CUDA: {r['cuda_epoch_s']:.3f} s / epoch, full {r['cuda_epochs']}-epoch run {r['cuda_run_s']:.1f} s.")
    else:
        lines.append("- CUDA: not measured (no CUDA device on this machine).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of (floor, bcdet, tutorial); best is kept")
    ap.add_argument("--device", default="cpu", help="device of the three-way comparison (cpu | cuda)")
    ap.add_argument("--out", default=None, help="result file stem (default: benchmarks/results/<host>-<profile>)")
    args = ap.parse_args(argv)

    prof = get_profile(args.profile)
    device = choose_device(args.device)
    root = locate_busi()
    print(f"bench: profile {prof.name}, device {device}, data {root}", flush=True)
    data = load_split_data(prof, "grouped", 0)
    res = cache_times(prof, root)
    print(f"  cache: build {res['cache_build_s']:.1f} s, load {res['cache_load_s']:.3f} s", flush=True)

    best = {"floor_s": [], "bcdet_epoch_s": [], "val_s": [], "tutorial_s": []}
    for r in range(args.repeats):  # interleaved, so a busy moment hurts all three alike
        best["floor_s"].append(floor_epoch(prof, data, device))
        epoch, val = bcdet_epoch(prof, data, device)
        best["bcdet_epoch_s"].append(epoch)
        best["val_s"].append(val)
        best["tutorial_s"].append(tutorial_epoch(prof, data, device, root))
        print(f"  round {r + 1}: floor {best['floor_s'][-1]:.2f} s, bcdet {epoch:.2f} s (val {val:.2f} s), "
              f"tutorial {best['tutorial_s'][-1]:.2f} s", flush=True)
    for k in best:
        res[k] = min(best[k])
    res["bcdet_train_s"] = res["bcdet_epoch_s"] - res["val_s"]
    res["all_rounds"] = best
    if torch.cuda.is_available():
        res.update(cuda_run(get_profile("paper"), load_split_data("paper", "grouped", 0)))

    rec = {
        "profile": prof.name,
        "config": f"{prof.image_size} px, {prof.channels} ch, width {prof.width}, batch {prof.batch_size}",
        "n_train": int((data.parts == "train").sum()),
        "repeats": args.repeats,
        "results": res,
        "environment": environment_info(device),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    stem = Path(args.out) if args.out else RESULTS / f"{socket.gethostname()}-{prof.name}"
    write_json(stem.with_suffix(".json"), rec)
    table = markdown(rec)
    stem.with_suffix(".md").write_text(table)
    print("\n" + table)
    print(f"written: {stem.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
