"""bcdet tune: equal-budget Optuna studies, SQLite storage, two workers, and no test image seen.

Each trial is a smoke run of 2 epochs (seconds); the data is the session's BUSI folder (real or
generated).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from bcdet_helpers import profiles  # noqa: E402
from bcdet_helpers.research import tune  # noqa: E402
from bcdet_helpers.errors import BcdetError  # noqa: E402


@pytest.fixture
def small(busi_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    return profiles.get_profile("smoke", epochs=1)


def _complete(url, name):
    study = optuna.load_study(study_name=name, storage=url)
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_every_arm_has_a_search_space_and_its_defaults_build():
    assert set(profiles.SEARCH_SPACES) == set(profiles.TUNED_ARMS) == {"constant", "decay", "switching", "onecycle"}
    assert set(profiles.ARMS) == set(profiles.PHASES_OF) == set(profiles.TUNED_ARMS) | set(profiles.BORROWS)
    for arm in profiles.ARMS:
        phases = profiles.schedule(arm, 50)
        assert sum(p.epochs for p in phases) == 50
    sw = profiles.schedule("switching", 50)
    assert [p.optimizer for p in sw] == ["adam", "sgd", "adam", "sgd"] and [p.epochs for p in sw] == [15, 15, 10, 10]
    de = profiles.schedule("decay", 50)
    assert {p.optimizer for p in de} == {"adam"} and [p.epochs for p in de] == [15, 15, 10, 10]
    assert de[0].warmup > 0 and all(p.warmup == 0 for p in de[1:])  # warm-up only where an optimizer is new
    assert all(p.warmup > 0 for p in sw)
    # a tuned point from the search space builds too (switch shares -> epochs)
    p = profiles.schedule("switching", 20, params={"switch1": 0.25, "switch2": 0.5, "switch3": 0.75})
    assert [x.epochs for x in p] == [5, 5, 5, 5]


def test_default_sqlite_storage_resumes_and_counts(small, tmp_path):
    out = tmp_path / "out"
    s = tune.tune(small, "constant", trials=1, out=out, jobs=1, progress=False)
    url = tune.storage_url(small.name)
    assert url.startswith("sqlite:///") and url.endswith("smoke/tuning/optuna.db")
    assert s["trials"] == 1 and 0 <= s["best_value"] <= 1
    again = tune.tune(small, "constant", trials=2, out=out, jobs=1, progress=False)  # resumes: one more trial
    trials = _complete(url, "smoke-constant-grouped")
    assert again["trials"] == 2 and len(trials) == 2
    assert trials[0].params != trials[1].params  # a resumed study draws new points, not its first ones again
    for f in ("trials-constant.csv", "best-constant.json", "history-constant.png", "importance-constant.png"):
        assert (out / f).exists(), f
    assert "max_phase_ratio" in s["best_user_attrs"] and s["stable"] in (True, False)
    # the sampler was told which trials blew up: Optuna stored each finished trial's constraint
    assert all(t.constraints == {"phase_ratio": t.user_attrs["max_phase_ratio"] - tune.STABLE_RATIO} for t in trials)


def test_stability_constraint_is_feasible_only_below_the_ratio():
    assert tune.stability_constraint(1.5) < 0 < tune.stability_constraint(32.4)
    assert tune.stability_constraint(float("inf")) > 0  # a loss that overflowed never counts as stable


def test_two_workers_share_one_sqlite_study(small, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    tune.tune(small, "onecycle", trials=3, storage=url, jobs=2, out=tmp_path / "o", progress=False)
    trials = _complete(url, "smoke-onecycle-grouped")
    assert len(trials) == 3  # adds up: no trial lost, none run twice
    assert len({t.number for t in trials}) == 3
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3


def test_tuning_never_sees_test_labels(small, tmp_path, monkeypatch):
    """Poison every test label: the tuned values and scores must not move."""
    import bcdet_helpers.data as bdata

    clean = tune.tune(small, "switching", trials=2, storage=f"sqlite:///{tmp_path / 'a.db'}", out=tmp_path / "a",
                      jobs=1, progress=False)  # one in-process worker: the poisoned loader below reaches it
    real = bdata.load_split_data

    def poisoned(*a, **kw):
        data = real(*a, **kw)
        test = np.flatnonzero(data.parts == "test")
        assert len(test) > 0
        data.labels[test] = (data.labels[test] + 1) % 3
        return data

    monkeypatch.setattr(bdata, "load_split_data", poisoned)
    dirty = tune.tune(small, "switching", trials=2, storage=f"sqlite:///{tmp_path / 'b.db'}", out=tmp_path / "b",
                      jobs=1, progress=False)
    assert dirty["params"] == clean["params"]
    assert math.isclose(dirty["best_value"], clean["best_value"])


def test_auto_jobs_fill_the_cpu_and_share_a_big_gpu(monkeypatch):
    import os

    from bcdet_helpers import device

    cores = os.cpu_count() or 1
    assert tune.auto_jobs("cpu") == cores and tune.auto_jobs("mps") == 1
    monkeypatch.setattr(device, "gpu_memory_gib", lambda dev: 79)  # an H100: 4 workers, where the cores allow
    assert tune.auto_jobs("cuda") == min(4, cores) and tune.auto_jobs("cuda:0") == min(4, cores)
    monkeypatch.setattr(device, "gpu_memory_gib", lambda dev: 6)  # a small GPU keeps one process
    assert tune.auto_jobs("cuda") == 1
    monkeypatch.undo()
    if not __import__("torch").cuda.is_available():
        assert device.gpu_memory_gib("cuda") == 0 and tune.auto_jobs("cuda") == 1


def test_bad_arguments_are_refused_before_any_work(small):
    with pytest.raises(BcdetError, match="Unknown arm"):
        tune.tune(small, "adamw", trials=1)
    with pytest.raises(BcdetError, match="at least 1"):
        tune.tune(small, "constant", trials=0)


def test_tuned_entry_needs_equal_budgets_and_stable_trials(tmp_path):
    def best(arm, trials, stable=True):
        (tmp_path / f"best-{arm}.json").write_text(json.dumps({
            "trials": trials, "stable": stable, "params": {"lr": 1e-3}, "best_trial": 3, "best_value": 0.71,
            "study": f"laptop-{arm}-grouped", "git_commit": "abc1234"}))

    with pytest.raises(BcdetError, match="lacks best-constant.json"):
        tune.tuned_entry(tmp_path)
    for arm in profiles.SEARCH_SPACES:
        best(arm, 12)
    with pytest.raises(BcdetError, match="Unequal or short budgets"):  # 12 < the default of 24 (#28)
        tune.tuned_entry(tmp_path)
    for arm in profiles.SEARCH_SPACES:
        best(arm, 24)
    best("decay", 20)
    with pytest.raises(BcdetError, match="Unequal or short budgets"):
        tune.tuned_entry(tmp_path)
    best("decay", 24)
    best("switching", 24, stable=False)
    with pytest.raises(BcdetError, match="No stable trial for switching"):
        tune.tuned_entry(tmp_path)
    best("switching", 24)
    entry = tune.tuned_entry(tmp_path)
    assert set(entry) == set(profiles.SEARCH_SPACES) and entry["decay"]["params"] == {"lr": 1e-3}
    assert "trial 3 of 24" in entry["onecycle"]["source"] and "abc1234" in entry["onecycle"]["source"]
    # the command line prints the entry as a Python literal to paste into profiles.py
    import ast
    import contextlib
    import io

    from bcdet_helpers.research.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["tune", "--profile", "laptop", "--adopt", str(tmp_path)]) == 0
    text = out.getvalue()
    assert "TUNED['laptop'] = " in text and ast.literal_eval(text.split(" = ", 1)[1]) == entry


def test_a_trial_is_scored_on_two_validation_sets_and_pruning_counts_against_the_budget(small, tmp_path):
    """#28: each trial trains twice (seeds 0 and 1: two validation sets carved from the training part)
    and scores their mean; a pruned trial uses up the budget like a finished one."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    s = tune.tune(small, "constant", trials=3, storage=url, jobs=1, out=tmp_path / "o", progress=False)
    study = optuna.load_study(study_name="smoke-constant-grouped", storage=url)
    done = _complete(url, "smoke-constant-grouped")
    assert all(len(t.user_attrs["scores"]) == tune.INNER_RUNS == 2 for t in done)
    assert all(math.isclose(t.value, np.mean(t.user_attrs["scores"])) for t in done)
    assert study.user_attrs["protocol"]["inner_runs"] == 2 and study.user_attrs["protocol"]["seed"] == 0
    runs = sorted(p.name for p in tune.trial_folder("smoke", "constant", "grouped", url).iterdir())
    assert {r.rsplit("-", 1)[1] for r in runs} == {"seed0", "seed1"}
    assert s["trials"] == 3 and s["finished_trials"] + s["pruned_trials"] == 3
    assert s["best_unfiltered"]["value"] >= s["best_value"]  # the sensitivity row: what the filter turned away
    # a pruned trial counts: two more trials, one of them pruned by hand, make five
    trial = study.ask()
    trial.report(0.0, step=0)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    again = tune.tune(small, "constant", trials=5, storage=url, jobs=1, out=tmp_path / "o", progress=False)
    assert again["trials"] == 5 and again["pruned_trials"] >= 1


def test_another_seed_is_refused_rather_than_mixed_into_a_study(small, tmp_path):
    """#27: `tune --seed 5` after a seed-0 study used to add to it silently."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    tune.tune(small, "onecycle", trials=1, storage=url, jobs=1, out=tmp_path / "o", progress=False)
    with pytest.raises(BcdetError, match="--seed to resume it, or give another --storage"):
        tune.tune(small, "onecycle", trials=2, storage=url, seed=5, jobs=1, out=tmp_path / "o", progress=False)
    assert len(_complete(url, "smoke-onecycle-grouped")) == 1


def test_the_largest_seed_tunes(small, tmp_path):
    """#27: --seed 4294967295 is the CLI's stated maximum; the run seeds and the sampler's wrap around."""
    assert tune.inner_seeds(2**32 - 1) == [2**32 - 1, 0]
    s = tune.tune(small, "constant", trials=1, storage=f"sqlite:///{tmp_path / 'm.db'}", seed=2**32 - 1, jobs=1,
                  out=tmp_path / "o", progress=False)
    assert s["trials"] == 1


@pytest.mark.parametrize("url, says", [
    ("garbage", "is not a database URL"),
    ("sqlite:////nonexistent/x.db", "/nonexistent does not exist"),
    ("postgresql://user:pw@localhost/db", "driver is not installed"),
])
def test_bad_storage_urls_get_one_line_before_any_trial(small, url, says, capsys, monkeypatch):
    from bcdet_helpers.research import cli

    if url.startswith("postgresql"):
        try:
            import psycopg2  # noqa: F401
            pytest.skip("psycopg2 is installed here")
        except ImportError:
            pass
    monkeypatch.setattr(tune, "_optimize", lambda *a, **k: pytest.fail("a trial ran"))
    assert cli.main(["tune", "--profile", "smoke", "--arm", "constant", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "pw" not in err  # the password never printed


def test_unknown_profile_and_ctrl_c_are_one_line(small, tmp_path, capsys, monkeypatch):
    from bcdet_helpers import runs
    from bcdet_helpers.research import cli

    assert cli.main(["tune", "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Unknown profile 'nope'" in err and "Traceback" not in err

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_run", interrupted)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = cli.main(["tune", "--profile", "smoke", "--arm", "constant", "--storage", url, "--jobs", "1",
                     "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert code == 130 and err.strip() == "bcdet: interrupted" and "Traceback" not in out + err
    study = optuna.load_study(study_name="smoke-constant-grouped", storage=url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]  # not counted, not running


def test_the_matched_arm_is_switching_with_adam_throughout(small, tmp_path, monkeypatch):
    """#28: switching - matched changes the optimizer and nothing else: the same boundaries, rates,
    warm-ups, weight decay and fresh starts; matched is never tuned, it borrows switching's values."""
    from bcdet_helpers import train
    from bcdet_helpers.runs import train_run

    assert "matched" not in profiles.SEARCH_SPACES and profiles.BORROWS == {"matched": "switching"}
    assert "matched" in profiles.get_profile("laptop").study_arms
    assert "matched" not in profiles.get_profile("class").arms  # the course keeps its four arms
    for prof in ("laptop", "smoke", None):
        sw, ma = profiles.schedule("switching", 50, prof), profiles.schedule("matched", 50, prof)
        assert [p.optimizer for p in ma] == ["adam"] * 4
        strip = lambda p: (p.lr, p.epochs, p.warmup, p.weight_decay)  # noqa: E731
        assert [strip(p) for p in ma] == [strip(p) for p in sw]
        assert [p.restart for p in ma] == [False, True, True, True]  # a new Adam where switching starts anew
    # next_optimizer starts a new optimizer on restart, keeps it otherwise
    import torch

    model = torch.nn.Linear(2, 2)
    first = train.make_optimizer(ma[0], model)
    assert train.next_optimizer(ma[1], ma[0], first, model) is not first
    kept = profiles.Phase("adam", 1e-4, 3)
    assert train.next_optimizer(kept, ma[0], first, model) is first
    # it trains, and runs recorded before the phase field existed still match their config
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path))
    res = train_run(small, "matched", seed=0, progress=False)
    assert set(res.history["optimizer"]) == {"adam"}
    import json

    cfg = json.loads((res.run_dir / "config.json").read_text())
    for phase in cfg["phases"]:
        phase.pop("restart")
    (res.run_dir / "config.json").write_text(json.dumps(cfg))
    sw_run = train_run(small, "switching", seed=0, progress=False)
    cfg = json.loads((sw_run.run_dir / "config.json").read_text())
    [p.pop("restart") for p in cfg["phases"]]
    (sw_run.run_dir / "config.json").write_text(json.dumps(cfg))
    assert train_run(small, "switching", seed=0, progress=False).run_dir == sw_run.run_dir  # loaded, not refused


def test_a_record_names_the_tuning_its_phases_came_from():
    """Adopting a new tuning leaves the runs recorded with the old one what they were: ``tuning_of``
    finds today's entry, a superseded one (``TUNED_BEFORE``) or our defaults, and nothing for phases no
    tuning gives."""
    from dataclasses import asdict, replace

    from bcdet_helpers.profiles import TUNED, TUNED_BEFORE, get_profile, schedule, tuning_of

    prof = get_profile("laptop")
    today = [asdict(p) for p in schedule("switching", prof.epochs, prof)]
    assert tuning_of("switching", prof, today) == TUNED["laptop"]["switching"]["source"].split("/best-")[0]
    for old in TUNED_BEFORE["laptop"]:  # newest first; the oldest is the first protocol's
        old = old["switching"]
        before = [asdict(p) for p in schedule("switching", prof.epochs, replace(prof, tuning=None), old["params"])]
        assert tuning_of("switching", prof, before) == old["source"].split("/best-")[0]
    assert old["source"].startswith("results/tuning/laptop/")
    assert tuning_of("matched", prof, [asdict(p) for p in schedule("matched", prof.epochs, prof)]) \
        == tuning_of("switching", prof, today)  # the matched arm borrows switching's tuning
    smoke = get_profile("smoke")
    assert tuning_of("constant", smoke, [asdict(p) for p in schedule("constant", smoke.epochs, smoke)]) == "defaults"
    assert tuning_of("constant", prof, [{**today[0], "lr": 123.0}]) is None


def test_a_profile_can_score_trials_on_macro_f1():
    """``class`` and ``laptop`` tune on validation macro-F1 (#29, #28): a model that never predicts one class scores low on
    it however accurate it is; the protocol names the score so an accuracy study is not resumed with it,
    while the accuracy studies recorded before the choice still resume."""
    import pandas as pd

    from bcdet_helpers.profiles import get_profile
    from bcdet_helpers.research.tune import objective_value, protocol

    history = pd.DataFrame({"val_acc": [0.7] * 6, "val_f1": [0.4] * 5 + [0.5]})
    assert objective_value(history) == 0.7
    assert abs(objective_value(history, "val_f1") - 0.42) < 1e-9
    assert get_profile("class").tune_score == get_profile("laptop").tune_score == get_profile("paper").tune_score == "val_f1"
    assert get_profile("smoke").tune_score == "val_acc"
    assert "score" not in protocol(0, "constant") and protocol(0, "constant", "val_f1")["score"] == "val_f1"
