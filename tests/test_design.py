"""StudyDesign: the one list of a study's runs, read by the planner, run_study and `bcdet study`."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from bcdet_helpers.research import plan
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.research import study as sd
from bcdet_helpers.profiles import KINDS, PROFILES, get_profile
from bcdet_helpers.runkey import AUGMENTED, RunKey
from bcdet_helpers.research.study import cv


@pytest.mark.parametrize("name", list(PROFILES))
def test_plan_and_run_study_produce_the_same_run_list(name, tmp_path, monkeypatch):
    """#32: `run_study(profile)` trains exactly the runs `bcdet reproduce` estimates (it used to give the
    random split every seed where the planner gave it the first only)."""
    prof = get_profile(name)
    folds = pd.DataFrame([{"partition": p, "kind": k, "fold": f, "file": f"{k}{f}.png", "group": f,
                           "label": "benign", "y": 0, "conflict": False}
                          for p in range(prof.partitions) for k in KINDS for f in range(prof.folds)])
    trained = []
    monkeypatch.setattr(cv, "write_folds", lambda *a, **k: None)
    monkeypatch.setattr(cv, "read_folds", lambda out: folds)
    monkeypatch.setattr(cv, "_write_runs", lambda *a, **k: None)
    monkeypatch.setattr(cv, "evaluate_study", lambda *a, **k: type("S", (), {"save": lambda self, p: None})())
    monkeypatch.setattr(cv, "_study_run", lambda prof, key, *a, **k: trained.append(key) or {})
    sd.run_study(prof, out=tmp_path, jobs=1, progress=False)
    assert trained == plan.study_runs(prof) == sd.study_design(prof).runs()
    if name in ("laptop", "paper"):  # five arms (matched included), both kinds, the ladder's extra runs
        assert {k.arm for k in trained} == set(prof.study_arms) and "matched" in prof.study_arms
        # the ladder is climbed for every tuned arm (#28): they get every random-split seed and the runs with
        # test copies; the matched arm only the random split's first seed
        assert set(prof.ladder_arms) == set(prof.arms)
        assert {k.seed for k in trained if k.kind == "random" and k.arm not in prof.ladder_arms} == {prof.seeds[0]}
        assert {(k.arm, k.seed) for k in trained if k.kind == AUGMENTED} == {(a, s) for a in prof.ladder_arms
                                                                            for s in prof.seeds}
        # a second fold partition repeats the grouped runs, only those (#28)
        again = [k for k in trained if k.partition == 1]
        assert len(again) == len(prof.study_arms) * prof.folds * len(prof.seeds) and {k.kind for k in again} == {"grouped"}


def test_the_study_decisions_live_in_the_profile_table():
    """#32: whether `bcdet reproduce` runs the study and which seeds the random split trains are profile
    fields (they were a tuple of profile names and a hard-coded "first seed" in the planner)."""
    assert [n for n, p in PROFILES.items() if p.study_by_default] == ["paper", "laptop"]
    assert plan.runs_study("laptop") and not plan.runs_study("class") and plan.runs_study("class", study=True)
    more = get_profile("laptop", random_seed_count=2, ladder_arms=())
    assert {k.seed for k in sd.study_design(more).runs() if k.kind == "random"} == {0, 1}
    assert {k.seed for k in sd.study_design(get_profile("laptop", ladder_arms=())).runs() if k.kind == "random"} == {0}
    assert {k.seed for k in sd.study_design(get_profile("laptop", seeds=(1, 2), ladder_arms=())).runs()
            if k.kind == "random"} == {1}  # the first of the profile's own seeds


def test_the_verdicts_runs_come_first():
    """A study stopped part-way (hours on a CPU) holds the runs its verdict reads -- the grouped runs of every
    fold partition -- before the random split's and the leakage ladder's extras, which it does not read."""
    keys = sd.study_design("laptop").runs()
    verdict = [k.kind == "grouped" for k in keys]
    assert sum(verdict) == 2 * 5 * 5 * 3  # 2 partitions x 5 arms x 5 folds x 3 seeds
    assert all(verdict[:sum(verdict)]) and not any(verdict[sum(verdict):])
    assert {k.partition for k in keys[:sum(verdict)]} == {0, 1} and {k.kind for k in keys[sum(verdict):]} == {
        "random", "augmented"}


def test_a_smaller_design_and_its_refusals():
    d = sd.study_design("laptop", arms=["constant"], kinds=["grouped"], seeds=[0], folds=[0, 1], partitions=[0])
    assert d.runs() == [RunKey("constant", "grouped", 0, 0), RunKey("constant", "grouped", 1, 0)]
    two = sd.study_design("laptop", arms=["constant"], kinds=["grouped"], seeds=[0], folds=[0])
    assert two.runs() == [RunKey("constant", "grouped", 0, 0), RunKey("constant", "grouped", 0, 0, partition=1)]
    with pytest.raises(BcdetError, match="partitions must include 0"):
        sd.study_design("laptop", partitions=[1])
    assert d.to_dict()["folds"] == [0, 1] and d.extra == {}
    assert sd.study_design("laptop", ladder=False).extra == {}
    with pytest.raises(BcdetError, match="Unknown kind"):
        sd.study_design("laptop", kinds=["shuffled"])


def _bcdet(*args, env):
    return subprocess.run([sys.executable, "-m", "bcdet_helpers.research.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_two_processes_run_two_runs_of_one_study_then_one_collects(busi_dir, tmp_path):
    """#32: a study that outgrows one machine: `bcdet study --list` numbers the runs, `--run K` trains run K
    alone (two processes at once stand in for two machines of a job array), writing only its own files."""
    env = {**os.environ, "BCDET_DATA": str(busi_dir), "BCDET_RUNS": str(tmp_path / "runs")}
    listed = _bcdet("study", "--profile", "smoke", "--list", env=env)
    assert listed.returncode == 0, listed.stderr
    names = [line.split("\t")[1] for line in listed.stdout.splitlines()]
    assert names == [k.name for k in sd.study_design("smoke").runs()]
    procs = [subprocess.Popen([sys.executable, "-m", "bcdet_helpers.research.cli", "study", "--profile", "smoke", "--run", str(k)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = tmp_path / "runs" / "smoke" / "cv"
    for k in (0, 1):
        key = RunKey.parse(names[k])
        assert (tmp_path / "runs" / "smoke" / key.folder() / "result.json").exists()
        assert (study / "oof" / f"{key.name}.csv").exists() and (study / "val" / f"{key.name}.csv").exists()
    assert not (study / "runs.csv").exists() and not (study / "design.json").exists()  # nothing shared written
    bad = _bcdet("study", "--profile", "smoke", "--run", str(len(names)), env=env)
    assert bad.returncode == 2 and "is not in this study" in bad.stderr and "Traceback" not in bad.stderr


def test_a_fifth_arm_is_a_table_entry_and_a_phase_function(busi_dir, tmp_path, monkeypatch):
    """#32: adding an arm touches the profile table only (README, "Adding an arm"): its numbers in ARMS, its
    phases in PHASES_OF, and -- to be tuned -- SEARCH_SPACES. Here a dummy arm, SGD throughout, joins a copy
    of the smoke profile and the study trains, predicts and scores it beside `constant`."""
    import dataclasses

    from bcdet_helpers import profiles
    from bcdet_helpers.runs import train_run

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setitem(profiles.ARMS, "sgdonly", {"lr": 0.01, "weight_decay": 1e-4})
    monkeypatch.setitem(profiles.PHASES_OF, "sgdonly", lambda a, epochs: [
        profiles.Phase("sgd", a["lr"], epochs, weight_decay=a["weight_decay"], warmup=1.0)])
    prof = dataclasses.replace(get_profile("smoke"), arms=("constant", "sgdonly"),
                               study_arms=("constant", "sgdonly"))
    run = train_run(prof, "sgdonly", progress=False)
    assert set(run.history["optimizer"]) == {"sgd"} and (run.run_dir / "result.json").exists()
    study = sd.run_study(prof, kinds=["grouped"], seeds=[0], folds=[0], out=tmp_path / "cv", jobs=1, progress=False,
                         n_boot=20)
    assert set(study.arms) == {"constant", "sgdonly"}
    assert study.score("sgdonly", "grouped").n_predictions > 0


def test_every_study_run_scores_the_external_set_after_its_test_fold(busi_dir, tmp_path, monkeypatch):
    """#30: with BUS-BRA beside BUSI, each study run's final weights predict every external image right after
    its test fold (external/<run>.csv.gz: one row per image, probabilities that sum to 1); a run recorded
    before that gets them from its weights when the study is called again."""
    from fakebusbra import make_busbra

    from bcdet_helpers.research.study.external import external_csv

    busbra = make_busbra(tmp_path / "data", n_patients=6)
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_BUSBRA", str(busbra))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    n_images = len(pd.read_csv(busbra / "bus_data.csv"))
    design = sd.study_design("smoke", arms=["constant"], kinds=["grouped"], seeds=[0], folds=[0, 1])
    out = tmp_path / "cv"
    sd.run_study(design, out=out, jobs=1, progress=False, n_boot=20)
    for key in design.runs():
        ext = pd.read_csv(external_csv(out, key))
        assert len(ext) == n_images and set(ext["arm"]) == {"constant"} and set(ext["fold"]) == {key.fold}
        assert ext[[f"p_{c}" for c in ("benign", "malignant", "normal")]].sum(axis=1).round(3).eq(1).all()
    first = external_csv(out, design.runs()[0])
    first.unlink()  # as if recorded before the external test existed
    sd.run_study(design, out=out, jobs=1, progress=False, n_boot=20)
    assert first.exists()


def test_a_second_fold_partition_is_trained_scored_and_counted_by_the_fold_test(busi_dir, tmp_path, monkeypatch):
    """#28: partition 1 draws its folds with fold_seed + 1 (other test folds, its own run folders), the study
    scores both partitions, its training replicates are (partition, seed), and the corrected test counts
    partitions x folds."""
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    design = sd.study_design("smoke", arms=["constant", "switching"], kinds=["grouped"], seeds=[0], partitions=[0, 1])
    study = sd.run_study(design, out=tmp_path / "cv", jobs=1, progress=False, n_boot=30)
    folds = sd.read_folds(tmp_path / "cv")
    by_partition = {p: g.set_index("file")["fold"] for p, g in folds.groupby("partition")}
    assert set(by_partition) == {0, 1} and not by_partition[0].equals(by_partition[1])  # another cut
    assert (tmp_path / "runs" / "smoke" / "constant-grouped-fold0-seed0-partition1" / "result.json").exists()
    assert study.complete and {c.partition for c in study.coverage} == {0, 1}
    d = study.difference("switching", "constant", "grouped")
    n_folds = study.folds["grouped"]
    assert d.partitions is not None and sorted(set(d.partitions)) == [0, 1]
    assert d.fold_test.n == 2 * n_folds == d.test.n  # one seed: partitions x folds runs, seeds averaged
    assert study.score("constant", "grouped").n_predictions == 2 * study.score("constant", "grouped").n_images
