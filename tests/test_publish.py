"""``bcdet publish``: the committed part of a reproduction, and nothing else."""
from __future__ import annotations

import json

import pytest

from bcdet_helpers.errors import BcdetError
from bcdet_helpers.publish import publish
from bcdet_helpers.runinfo import write_json
from bcdet_helpers.train import run_dir_for


def fake_reproduction(profile="smoke"):
    """What ``bcdet reproduce`` leaves in runs/<profile>/, with placeholder contents."""
    runs = [{"split": "grouped", "schedule": s, "seed": 0, "accuracy": 0.5} for s in ("constant", "switching")]
    for r in runs:
        run = run_dir_for(profile, r["schedule"], r["split"], r["seed"])
        write_json(run / "config.json", {"schedule": r["schedule"]})
        write_json(run / "result.json", {"seconds_per_epoch": 1.0})
        (run / "history.csv").write_text("epoch,val_acc\n1,0.5\n")
        (run / "best.pt").write_bytes(b"weights")
        (run / "checkpoint.pt").write_bytes(b"weights")
    extra = run_dir_for(profile, "onecycle", "grouped", 0)  # trained by hand, not part of the study
    write_json(extra / "result.json", {})
    folder = run_dir_for(profile, "constant", "grouped", 0).parent
    (folder / "figures").mkdir()
    (folder / "figures" / "05_confusion_matrices.png").write_bytes(b"png")
    (folder / "splits").mkdir()
    (folder / "splits" / "grouped-fold0-seed0.csv").write_text("file,split\n")
    (folder / "notebooks").mkdir()
    (folder / "notebooks" / "01_dataset_inspection.ipynb").write_text("{}")
    write_json(folder / "metrics.json", {
        "profile": profile, "runs": runs, "reproduce": {"profile": profile},
        "notebooks": {"05_evaluation.ipynb": {"wall_time_s": 3.0, "executed": "notebooks/05_evaluation.ipynb"}}})
    return folder


def test_publish_copies_the_small_outputs_only(tmp_path, monkeypatch):
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    fake_reproduction()
    dest = tmp_path / "results" / "smoke"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an older study")

    assert publish("smoke", dest=dest) == dest
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == [
        "figures/05_confusion_matrices.png", "metrics.json", "report.md",
        "runs/constant-grouped-fold0-seed0/config.json", "runs/constant-grouped-fold0-seed0/history.csv",
        "runs/constant-grouped-fold0-seed0/result.json",
        "runs/switching-grouped-fold0-seed0/config.json", "runs/switching-grouped-fold0-seed0/history.csv",
        "runs/switching-grouped-fold0-seed0/result.json",
        "splits/grouped-fold0-seed0.csv",
    ]  # no weights, no executed notebooks, no run outside the study, nothing stale
    assert json.loads((dest / "metrics.json").read_text())["profile"] == "smoke"
    report = (dest / "report.md").read_text()
    assert "runs/smoke/notebooks/" in report and "](notebooks/" not in report  # no dead links
    assert not list(tmp_path.glob("results/*.publishing")) and not list(tmp_path.glob("results/*.old"))


def test_publish_refuses_without_a_finished_reproduction(tmp_path, monkeypatch):
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    with pytest.raises(BcdetError, match="bcdet reproduce --profile smoke"):
        publish("smoke", dest=tmp_path / "results")
    folder = fake_reproduction()
    (run_dir_for("smoke", "switching", "grouped", 0) / "result.json").unlink()  # interrupted run
    with pytest.raises(BcdetError, match="not finished"):
        publish("smoke", dest=tmp_path / "results")
    assert not (tmp_path / "results").exists()
    assert folder.exists()


def test_publish_refuses_an_incomplete_or_stale_metrics_json(tmp_path, monkeypatch):
    """Issue #16 case 3: only what a finished `bcdet reproduce` wrote last is published."""
    import os

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    folder = fake_reproduction()
    metrics = json.loads((folder / "metrics.json").read_text())
    write_json(folder / "metrics.json", {k: v for k, v in metrics.items() if k != "reproduce"})  # nb 05 alone
    with pytest.raises(BcdetError, match="incomplete.*bcdet reproduce --profile smoke"):
        publish("smoke", dest=tmp_path / "results")
    write_json(folder / "metrics.json", metrics)
    later = (folder / "metrics.json").stat().st_mtime_ns + 10**9
    os.utime(folder / "notebooks" / "01_dataset_inspection.ipynb", ns=(later, later))  # re-ran after it
    with pytest.raises(BcdetError, match="stale: 01_dataset_inspection.ipynb"):
        publish("smoke", dest=tmp_path / "results")
    assert not (tmp_path / "results").exists()
