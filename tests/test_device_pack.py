"""``benchmarks/device/pack.py``: what a lent GPU's call carries back and forth of a study or of the improvement
ladder (#28, #31). A call cut by its time leaves unfinished runs; those must not travel (the next call, or the CPU,
would trust their partial records), and weights never travel (they do not fit the 64 MiB a call carries)."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _run(folder: Path, finished: bool = True) -> None:
    folder.mkdir(parents=True)
    for name in ("config.json", "history.csv", "checkpoint.pt", "weights.pt"):
        (folder / name).write_text("x")
    if finished:
        (folder / "result.json").write_text("{}")


def _pack(runs: Path, dest: Path, *extra: str) -> list[str]:
    subprocess.run([sys.executable, str(ROOT / "benchmarks/device/pack.py"), str(runs), "laptop", str(dest), *extra],
                   check=True, capture_output=True, text=True, cwd=ROOT)
    with tarfile.open(dest) as tar:
        return sorted(tar.getnames())


def test_the_improve_pack_carries_the_ladder_and_its_baseline_runs_but_no_weights_or_unfinished_runs(tmp_path):
    runs = tmp_path / "runs"
    base = runs / "laptop" / "improve" / "studies" / "baseline"
    (base / "oof").mkdir(parents=True)
    (base / "oof" / "decay-grouped-fold0-seed0.csv").write_text("x")
    pd.DataFrame({"arm": ["decay"], "run": ["decay-grouped-fold0-seed0"]}).to_csv(base / "runs.csv", index=False)
    (runs / "laptop" / "improve" / "studies" / "stray.pt").write_text("x")
    _run(runs / "laptop" / "decay-grouped-fold0-seed0")  # the baseline's: travels
    _run(runs / "laptop" / "constant-grouped-fold0-seed0")  # another arm of the verdict: stays
    _run(runs / "laptop-improve-logit_adjust" / "decay-grouped-fold0-seed0")
    _run(runs / "laptop-improve-logit_adjust-128px" / "decay-grouped-fold0-seed0", finished=False)

    names = _pack(runs, tmp_path / "improve.tar.gz", "--improve")

    assert "laptop/improve/studies/baseline/oof/decay-grouped-fold0-seed0.csv" in names
    assert "laptop/decay-grouped-fold0-seed0/result.json" in names
    assert "laptop-improve-logit_adjust/decay-grouped-fold0-seed0/history.csv" in names
    assert not [n for n in names if n.startswith("laptop/constant")]
    assert not [n for n in names if "128px" in n]  # unfinished: trained again, not trusted
    assert not [n for n in names if n.endswith(".pt")]


def test_the_study_pack_carries_the_study_folder_and_finished_runs(tmp_path):
    runs = tmp_path / "runs"
    (runs / "laptop" / "cv").mkdir(parents=True)
    (runs / "laptop" / "cv" / "runs.csv").write_text("run\n")
    _run(runs / "laptop" / "constant-grouped-fold0-seed0")
    _run(runs / "laptop" / "constant-grouped-fold1-seed0", finished=False)

    names = _pack(runs, tmp_path / "study.tar.gz")

    assert "laptop/cv/runs.csv" in names and "laptop/constant-grouped-fold0-seed0/config.json" in names
    assert not [n for n in names if "fold1" in n or n.endswith(".pt")]
