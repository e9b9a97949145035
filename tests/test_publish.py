"""``bcdet publish``: the committed part of a reproduction, and nothing else."""
from __future__ import annotations

import json

import pytest

from bcdet_helpers.errors import BcdetError
from bcdet_helpers.research.outputs import MARKER
from bcdet_helpers.research.publish import publish
from bcdet_helpers.runinfo import write_json
from bcdet_helpers.runs import run_dir_for


def fake_reproduction(profile="smoke"):
    """What ``bcdet reproduce`` leaves in runs/<profile>/, with placeholder contents."""
    runs = [{"split": "grouped", "schedule": s, "seed": 0, "accuracy": 0.5} for s in ("constant", "switching")]
    for r in runs:
        run = run_dir_for(profile, r["schedule"], r["split"], seed=r["seed"])
        write_json(run / "config.json", {"schedule": r["schedule"]})
        write_json(run / "result.json", {"seconds_per_epoch": 1.0})
        (run / "history.csv").write_text("epoch,val_acc\n1,0.5\n")
        (run / "best.pt").write_bytes(b"weights")
        (run / "checkpoint.pt").write_bytes(b"weights")
    extra = run_dir_for(profile, "onecycle", "grouped", seed=0)  # trained by hand, not part of the study
    write_json(extra / "result.json", {})
    folder = run_dir_for(profile, "constant", "grouped", seed=0).parent
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
    (dest / MARKER).write_text("an older publish")  # which wrote this folder: it may replace it

    assert publish("smoke", dest=dest) == dest
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == [
        MARKER, "figures/05_confusion_matrices.png", "metrics.json", "report.md",
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
    (run_dir_for("smoke", "switching", "grouped", seed=0) / "result.json").unlink()  # interrupted run
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


# ------------------------------------------------------------------ the cross-validated study (#14)
def fake_study_reproduction(profile="smoke"):
    """A finished reproduction that ran the cross-validated study: runs/<profile>/cv/ as run_study
    leaves it (predictions written by hand, test_study.write_folder) and a metrics.json that says so."""
    import time

    from test_study import write_folder

    from bcdet_helpers.research import study as sd

    folder = fake_reproduction(profile)
    cv = write_folder(folder / "cv")
    study = sd.evaluate_study(cv, n_boot=100)
    study.save(cv / "study.json")
    (cv / "oof" / "switching-grouped-fold0-seed0.pt").write_bytes(b"weights")  # never copied
    time.sleep(0.01)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["reproduce"]["study"] = {  # as reproduce records it
        "run": True, "folder": "cv", "seeds": [0, 1], "splits": ["grouped", "random"],
        "schedules": study.arms, "folds": 3, "seeds_by_kind": study.seeds, "runs": 36, "complete": True,
        "smaller_than_profile": False}
    write_json(folder / "metrics.json", metrics)
    return folder, study


def test_publish_copies_the_study_folder_and_reports_from_it(tmp_path, monkeypatch):
    from bcdet_helpers.research import study as sd

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    folder, study = fake_study_reproduction()
    dest = tmp_path / "results" / "smoke"
    publish("smoke", dest=dest)
    cv = tmp_path / "results" / "smoke-cv"
    files = sorted(str(p.relative_to(cv)) for p in cv.rglob("*") if p.is_file())
    n_runs = len(list((folder / "cv" / "oof").glob("*.csv")))
    assert [f for f in files if "/" not in f] == [MARKER, "README.md", "design.json", "folds.csv", "runs.csv",
                                                  "study.json"]
    assert sum(f.startswith("oof/") for f in files) == n_runs == sum(f.startswith("val/") for f in files)
    assert all(f.endswith((".csv", ".json", ".md")) for f in files if f != MARKER)  # no weights
    # the study's finished runs (here the two with a result.json) travel with it: commit, versions, wall time
    assert sorted({f.split("/")[1] for f in files if f.startswith("runs/")}) == \
        ["constant-grouped-fold0-seed0", "switching-grouped-fold0-seed0"]
    assert "cp -r results/smoke-cv/runs/* runs/smoke/" in (cv / "README.md").read_text()
    assert sd.load_study(cv).to_dict() == study.to_dict()  # the one JSON form, read back unchanged
    report = (dest / "report.md").read_text()
    d = study.difference("switching", "constant")
    assert f"**switching − constant** (the paper's claim): {100 * d.pooled.value:+.1f} points" in report
    assert f"[{100 * d.pooled.low:+.1f}, {100 * d.pooled.high:+.1f}]" in report
    assert "results/smoke-cv/" in report and "did not run" not in report
    assert not list(tmp_path.glob("results/*.publishing")) and not list(tmp_path.glob("results/*.old"))


def test_publish_refuses_a_missing_incomplete_or_newer_study(tmp_path, monkeypatch):
    import os

    from bcdet_helpers.research import study as sd

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    folder, _ = fake_study_reproduction()
    cv = folder / "cv"
    metrics = json.loads((folder / "metrics.json").read_text())
    (cv / "study.json").rename(cv / "kept.json")
    with pytest.raises(BcdetError, match="study.json is missing"):
        publish("smoke", dest=tmp_path / "results" / "smoke")
    (cv / "oof" / "constant-grouped-fold1-seed0.csv").unlink()  # a run whose predictions never came
    sd.evaluate_study(cv, n_boot=50).save(cv / "study.json")
    write_json(folder / "metrics.json", metrics)  # written after the study: not stale, but incomplete
    with pytest.raises(BcdetError, match="incomplete"):
        publish("smoke", dest=tmp_path / "results" / "smoke")
    (cv / "kept.json").replace(cv / "study.json")
    later = (folder / "metrics.json").stat().st_mtime_ns + 10**9
    os.utime(cv / "study.json", ns=(later, later))  # the study re-ran after the reproduction finished
    with pytest.raises(BcdetError, match="stale: cv/study.json"):
        publish("smoke", dest=tmp_path / "results" / "smoke")
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------- never delete what publish did not write (#27)
def test_publish_never_replaces_a_folder_it_did_not_write(tmp_path, monkeypatch, capsys):
    """Issue #27 case 1: `bcdet publish --dest` on a user's folder deleted their files without a word.
    Now it refuses in one line, naming the folder and --force; so do the `-cv` and `-cv-partial`
    folders beside it, and nothing is written. What publish wrote itself it replaces."""
    from bcdet_helpers.research.cli import main

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    fake_study_reproduction()
    mywork = tmp_path / "mywork"
    (mywork / "thesis").mkdir(parents=True)
    (mywork / "notes.txt").write_text("mine")
    (mywork / "thesis" / "chapter1.tex").write_text("mine too")
    assert main(["publish", "--profile", "smoke", "--dest", str(mywork)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bcdet: error: Refusing to replace {mywork}: bcdet did not write it") and "--force" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert (mywork / "notes.txt").read_text() == "mine" and (mywork / "thesis" / "chapter1.tex").read_text() == "mine too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mywork", "runs"]  # nothing staged, no -cv written

    new = tmp_path / "new"
    for side in ("new-cv", "new-cv-partial"):  # the study's folders beside the destination
        theirs = tmp_path / side
        theirs.mkdir()
        (theirs / "notes.txt").write_text("mine")
        with pytest.raises(BcdetError, match=f"Refusing to replace {theirs}.*--force"):
            publish("smoke", dest=new)
        assert (theirs / "notes.txt").read_text() == "mine" and not new.exists()
        (theirs / "notes.txt").rename(tmp_path / f"{side}.txt")
        theirs.rmdir()  # empty: publish may use it

    assert publish("smoke", dest=new) == new
    assert publish("smoke", dest=new) == new  # its own folders (the marker) it replaces without --force
    assert (new / MARKER).exists() and (tmp_path / "new-cv" / MARKER).exists()

    assert main(["publish", "--profile", "smoke", "--dest", str(mywork), "--force"]) == 0  # asked for: replaced
    out = capsys.readouterr().out
    assert f"--force: replacing 2 file(s) in {mywork} (bcdet did not write it" in out
    assert not (mywork / "notes.txt").exists() and (mywork / MARKER).exists()


def test_publish_replaces_committed_results_only_with_force(tmp_path, monkeypatch, capsys):
    """Issue #27 case 1: `--dest results` wiped the 1,487 committed result files. Files git tracks are
    records: even in a folder publish wrote, replacing them needs --force, which says how many."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    fake_reproduction()
    repo = tmp_path / "repo"
    dest = publish("smoke", dest=repo / "results" / "smoke")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "add", "results"], cwd=repo, check=True)
    n = len(subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.splitlines())
    with pytest.raises(BcdetError, match=rf"Refusing to replace {dest}: {n} of its files are committed to git.*--force"):
        publish("smoke", dest=dest)
    (dest / "metrics.json").write_text("{}")  # so that a replacement shows
    with pytest.raises(BcdetError, match="Refusing"):
        publish("smoke", dest=repo / "results")  # the whole results/ folder: not publish's, and committed
    assert (dest / "metrics.json").read_text() == "{}"
    assert publish("smoke", dest=dest, force=True) == dest
    assert f"--force: replacing {n} file(s) in {dest} ({n} of its files are committed to git" in capsys.readouterr().out
    assert json.loads((dest / "metrics.json").read_text())["profile"] == "smoke"
