"""``reproduce``: notebooks run in order, wall times recorded, a failing cell named, a report written.

The course notebooks themselves are exercised by test_notebooks.py; here we inject tiny
notebooks so the orchestration is tested in seconds.
"""
from __future__ import annotations

import json

import nbformat
import pytest

from bcdet_helpers.research import pace, plan
from bcdet_helpers.research import reproduce as rp
from bcdet_helpers.research.commands import cli_reproduce
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.research.long_job import confirm_long_job, faster_choices, print_estimate

KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture(autouse=True)
def usable_busi(busi_dir, monkeypatch):
    """reproduce refuses to start without a usable BUSI folder (issue #16), even for tiny notebooks."""
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))


def write_nb(path, *sources, params='profile = "laptop"'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    params = nbformat.v4.new_code_cell(params)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path):
    ok = write_nb(tmp_path / "01_ok.ipynb", "print('chapter one', profile)")
    bad = write_nb(tmp_path / "02_broken.ipynb", "x = 1", "raise ValueError('boom in chapter two')")
    never = write_nb(tmp_path / "03_never.ipynb", "print('should not run')")
    out = tmp_path / "runs"
    with pytest.raises(BcdetError) as info:
        rp.reproduce("smoke", out=out, notebooks=[ok, bad, never], echo=False)
    msg = str(info.value)
    assert "02_broken.ipynb" in msg and "cell" in msg and "raise ValueError" in msg
    assert "ValueError: boom in chapter two" in msg
    folder = out / "smoke"
    assert (folder / "notebooks" / "01_ok.ipynb").exists()  # ran, with the profile injected
    assert "chapter one smoke" in (folder / "notebooks" / "01_ok.ipynb").read_text()
    assert (folder / "notebooks" / "02_broken.ipynb").exists()  # kept, for the traceback
    assert not (folder / "notebooks" / "03_never.ipynb").exists()
    assert not (folder / "report.md").exists()


def test_successful_run_merges_wall_times_and_writes_the_report(tmp_path, monkeypatch):
    writer = write_nb(
        tmp_path / "05_writes.ipynb",
        "from bcdet_helpers.paths import runs_dir\n"
        "from bcdet_helpers.runinfo import write_json\n"
        "write_json(runs_dir(profile) / 'metrics.json', {'profile': profile, 'from_notebook': 42})",
    )
    runs = tmp_path / "elsewhere"
    metrics = rp.reproduce("smoke", out=runs / "smoke", notebooks=[writer], echo=False)
    saved = json.loads((runs / "smoke" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["from_notebook"] == 42  # the notebook's numbers survive the merge
    assert saved["notebooks"]["05_writes.ipynb"]["wall_time_s"] > 0
    assert saved["reproduce"]["estimate"]["seconds_per_epoch"] > 0
    assert saved["reproduce"]["environment"]["versions"]["torch"]
    report = (runs / "smoke" / "report.md").read_text()
    assert "profile `smoke`" in report and "05_writes.ipynb" in report and "not a medical device" in report


def test_a_failed_reproduction_leaves_no_report_that_looks_current(tmp_path, monkeypatch, capsys):
    """Issue #16 case 3: the last report is set aside, not left beside new, failed notebooks."""
    from bcdet_helpers.research.publish import publish

    writer = write_nb(
        tmp_path / "05_writes.ipynb",
        "from bcdet_helpers.paths import runs_dir\n"
        "from bcdet_helpers.runinfo import write_json\n"
        "write_json(runs_dir(profile) / 'metrics.json', {'profile': profile, 'runs': []})",
    )
    out = tmp_path / "runs"
    rp.reproduce("smoke", out=out, notebooks=[writer], echo=False)
    folder = out / "smoke"
    assert (folder / "report.md").exists() and (folder / "metrics.json").exists()
    bad = write_nb(tmp_path / "01_broken.ipynb", "raise ValueError('boom')")
    with pytest.raises(BcdetError, match="01_broken.ipynb failed"):
        rp.reproduce("smoke", out=out, notebooks=[bad, writer], echo=False)
    assert not (folder / "report.md").exists() and not (folder / "metrics.json").exists()
    assert (folder / "report.previous.md").exists() and (folder / "metrics.previous.json").exists()
    assert "report.previous.md" in capsys.readouterr().out
    monkeypatch.setenv("BCDET_RUNS", str(out))
    with pytest.raises(BcdetError, match="run `bcdet reproduce --profile smoke` first"):
        publish("smoke", dest=tmp_path / "results")
    rp.reproduce("smoke", out=out, notebooks=[writer], echo=False)  # a success clears the old copies
    assert (folder / "report.md").exists() and not (folder / "report.previous.md").exists()
    assert not (folder / "metrics.previous.json").exists()


def _fold0_metrics(profile="laptop"):
    """metrics.json as notebook 05 writes it: chapter 04's runs on fold 0, scored in detail."""
    return {
        "profile": profile,
        "evaluation": {"split": "grouped", "fold": 0, "seed": 0, "weights": "last", "models": {
            "switching": {"accuracy": 0.777, "macro_f1": 0.7, "weighted_f1": 0.75, "macro_auc": 0.9,
                          "ece": 0.05, "n": 120}}},
        "runs": [{"split": "grouped", "schedule": "switching", "seed": 0, "fold": 0, "n_test": 120,
                  "accuracy": 0.777, "macro_f1": 0.7, "acc_low": 0.70, "acc_high": 0.84, "train_seconds": 30.0}],
        "notebooks": {"05_evaluation.ipynb": {"wall_time_s": 12.0, "executed": "notebooks/05_evaluation.ipynb"}},
    }


def test_report_without_a_study_shows_one_fold_and_says_no_verdict(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "05_confusion_matrices.png").write_bytes(b"png")
    (tmp_path / "figures" / "05_forest.png").write_bytes(b"png")  # left by another study: not linked as the verdict
    text = rp.write_report(_fold0_metrics(), tmp_path).read_text()
    assert "77.7% [70.0, 84.0]" in text and "fold 0, seed 0, 120 test images" in text
    assert "did not run" in text and "no verdict" in text
    assert "| Achyuthanwesh et al., switching Adam/SGD + LR | 90.0%" in text
    assert "figures/05_confusion_matrices.png" in text
    assert "![The verdict" not in text  # not shown as the verdict of a study that did not run
    assert "figures/05_gradcam.png" not in text  # only figures that exist are linked


def test_the_reports_study_line_counts_every_arm_partition_and_ladder_run(tmp_path):
    """The header line names the study that ran: the matched arm, both fold partitions and the leakage ladder's
    runs included (it once said "80 training runs = arms constant, decay, switching, onecycle" of a 275-run study)."""
    metrics = _fold0_metrics()
    metrics["reproduce"] = {"study": {
        "run": True, "seeds": [0, 1, 2], "splits": ["grouped", "random"], "folds": 5,
        "schedules": ["constant", "decay", "switching", "onecycle"],
        "arms": ["constant", "decay", "switching", "onecycle", "matched"], "partitions": 2,
        "seeds_by_kind": {"grouped": [0, 1, 2], "random": [0]}, "runs": 275, "smaller_than_profile": False}}
    line = next(x for x in rp.write_report(metrics, tmp_path).read_text().splitlines()
                if x.startswith("- cross-validated study:"))
    assert line.startswith("- cross-validated study: 275 training runs = arms constant, decay, switching, onecycle, "
                           "matched x 5 folds")
    assert "on 2 fold partitions" in line and "100 more for the leakage ladder" in line  # 5 x 5 x (3 x 2 + 1) = 175
    del metrics["reproduce"]["study"]["arms"], metrics["reproduce"]["study"]["partitions"]  # a record from before
    del metrics["reproduce"]["study"]["runs"]
    older = next(x for x in rp.write_report(metrics, tmp_path).read_text().splitlines()
                 if x.startswith("- cross-validated study:"))
    assert older.startswith("- cross-validated study: 80 training runs = arms constant, decay, switching, onecycle x")


def test_report_is_built_from_the_metrics_and_the_study(tmp_path):
    """The study's numbers come from the typed Study (one schema), set beside the paper's."""
    from test_study import write_folder

    from bcdet_helpers.research import study as sd

    study = sd.evaluate_study(write_folder(tmp_path / "cv"), n_boot=200)
    study = sd.load_study(study.save(tmp_path / "cv" / "study.json"))  # what reproduce and publish read
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "05_forest.png").write_bytes(b"png")
    text = rp.write_report(_fold0_metrics(), tmp_path, study=study).read_text()
    s = study.score("switching")
    t = s.accuracy_training  # the headline interval carries training variance; the fixed-model one beside it
    assert f"| ours, switching | leak-free grouped folds | {100 * t.value:.1f}% [{100 * t.low:.1f}, " \
           f"{100 * t.high:.1f}] | {100 * s.accuracy.value:.1f}% [{100 * s.accuracy.low:.1f}, " \
           f"{100 * s.accuracy.high:.1f}] |" in text
    assert "| Achyuthanwesh et al., switching Adam/SGD + LR | not stated | 90.0%" in text
    assert study.verdict_analysis and study.verdict_analysis in text
    for a, b, _ in sd.COMPARISONS:
        if {a, b} <= set(study.arms):
            d = study.difference(a, b)
            iv, f, (detectable, power) = d.training, d.fold_test, d.resolution(study.claim)
            assert f"| {a} − {b} | {d.question} | {100 * iv.value:+.1f} [{100 * iv.low:+.1f}, " \
                   f"{100 * iv.high:+.1f}] | {f.n} differences, p = {f.p:.3f}, [{100 * f.low:+.1f}, " \
                   f"{100 * f.high:+.1f}] | {100 * d.pooled.value:+.1f} [{100 * d.pooled.low:+.1f}, " \
                   f"{100 * d.pooled.high:+.1f}] | {100 * detectable:.1f} | {100 * power:.1f}% |" in text
            assert f"**{a} − {b}** ({d.question}): {100 * d.pooled.value:+.1f} points — the CI" in text
    d = study.difference("switching", "constant")
    assert "The paper reports +9.0 points" in text and ("excludes 0" if d.training.low > 0 else "includes 0") in text
    g = next(x for x in study.leakage if x.arm == "switching" and x.metric == "accuracy")
    assert f"- switching: {100 * g.random:.1f}% vs {100 * g.grouped:.1f}% → {100 * g.gap.value:+.1f}" in text
    assert f"{len(study.conflicts)} image(s) whose near-duplicates carry another label" in text
    assert "## The weights rule" in text and "ensemble of 2 seed(s)" in text
    assert "figures/05_forest.png" in text and "did not run" not in text


def test_the_verdict_in_words_follows_the_interval():
    from types import SimpleNamespace as NS

    from bcdet_helpers.research.stats import Interval

    def d(low, high, a="switching", b="constant"):
        iv = Interval((low + high) / 2, low, high, 0.01)
        return NS(a=a, b=b, verdict_interval=iv, resolution=lambda claim: (0.12, 0.9))

    assert "switching is better than constant, by more than the paper's +9.0" in rp.verdict(d(0.10, 0.20), 0.09)
    assert "but by less than the paper's +9.0 points (the CI excludes it)" in rp.verdict(d(0.01, 0.05), 0.09)
    assert "cannot tell switching from constant, and it excludes the paper's" in rp.verdict(d(-0.05, 0.04), 0.09)
    assert "detects a true difference of 12.0 points" in rp.verdict(d(-0.05, 0.04), 0.09)
    assert "nor rule out" in rp.verdict(d(-0.05, 0.12), 0.09)
    assert "decay is worse than constant" in rp.verdict(d(-0.2, -0.1, "decay"), 0.09)


def test_the_verdict_reads_the_interval_with_training_variance_not_the_fixed_model_one():
    """Issue #28: "+9 is ruled out" only where the interval that resamples the trained models excludes it.
    Here the fixed-model interval excludes 0 and +9, the training-variance one includes both."""
    from bcdet_helpers.research import stats as st
    from bcdet_helpers.research.stats import CorrectedTTest, Interval
    from bcdet_helpers.research.study.result import Difference

    t = CorrectedTTest(n=10, mean=0.02, sd=0.03, n_train=500, n_test=150, se=0.012, naive_se=0.01, t=1.7, df=9,
                       p=0.12, low=-0.007, high=0.047)
    fixed, wide = Interval(0.03, 0.01, 0.05, 0.01), Interval(0.03, -0.04, 0.11, 0.038)
    d = Difference(a="switching", b="constant", question="the paper's claim", kind="grouped", weights="last",
                   metric="accuracy", pooled=fixed, image_level=fixed, per_run=[0.02] * 10, runs=[[0, 0]] * 10, test=t,
                   detectable=0.03, detectable_bootstrap=0.03, power_at_claim=0.99, training=wide)
    assert d.verdict_interval is wide
    text = rp.verdict(d, 0.09)
    assert "cannot tell switching from constant" in text and "nor rule out the paper's +9.0 points" in text
    detectable, power = d.resolution(0.09)
    assert detectable == pytest.approx((1.959964 + 0.841621) * 0.038, rel=1e-4) and power < 0.9
    assert f"detects a true difference of {100 * detectable:.1f} points" in text
    with_test = Difference(**{**d.__dict__, "fold_test": CorrectedTTest(
        n=5, mean=0.02, sd=0.05, n_train=500, n_test=150, se=0.05, naive_se=0.02, t=0.4, df=4, p=0.7, low=-0.12,
        high=0.16)})  # the corrected test sees less than the bootstrap here: the claim is sized to it
    assert with_test.resolution(0.09)[0] == pytest.approx(st.detectable_difference(0.05, 4))
    assert with_test.resolution(0.09)[1] == pytest.approx(st.power_at(0.09, 0.05, 4))
    assert with_test.resolution(0.09)[1] < power
    older = Difference(**{**d.__dict__, "training": None})  # a version-1 study: the fixed-model interval and its test
    assert older.verdict_interval is fixed and older.resolution(0.09) == (0.03, 0.99)
    assert "switching is better than constant" in rp.verdict(older, 0.09)


def test_estimate_prefers_recorded_seconds_per_epoch(tmp_path, monkeypatch):
    from bcdet_helpers.runinfo import write_json
    from bcdet_helpers.runs import run_dir_for

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path))
    write_json(run_dir_for("smoke", "constant", "grouped", seed=0) / "result.json",
               {"seconds_per_epoch": 2.5, "environment": {"device": "cpu"}})
    est = rp.estimate("smoke", "cpu")
    assert est["seconds_per_epoch"] == 2.5 and "recorded" in est["seconds_per_epoch_source"]
    from bcdet_helpers.profiles import get_profile

    p = get_profile("smoke")
    n_runs = len(p.arms)  # smoke: no study by default, notebook 04's arms on one fold (05 scores them)
    assert est["runs"] == n_runs and est["runs_done"] == 1 and not est["study"]  # the finished run is reused
    assert est["training_seconds"] == pytest.approx((n_runs - est["runs_done"]) * p.epochs * 2.5)
    est = rp.estimate("smoke", "cpu", study=True)  # 5 folds x arms x (grouped seeds + the random split's first)
    n_runs = p.folds * len(p.study_arms) * (len(p.seeds) + 1)  # + the ladder's 5 runs with test copies (heavier)
    assert est["runs"] == est["runs_study"] == n_runs + p.folds and est["runs_done"] == 1
    heavier = 1 + p.ladder_test_copies / ((p.folds - 1) * (1 - p.val_fraction))
    assert est["training_seconds"] == pytest.approx(round((n_runs - 1 + p.folds * heavier) * p.epochs) * 2.5)
    # runs trained by the study's single-thread workers, two at a time: their pace, and half the wall time
    from bcdet_helpers import device

    monkeypatch.setattr(device, "auto_jobs", lambda dev: 2)
    monkeypatch.setattr(device, "worker_threads", lambda jobs: 1)
    write_json(run_dir_for("smoke", "decay", "grouped", seed=0) / "result.json",
               {"seconds_per_epoch": 4.0, "environment": {"device": "cpu", "torch_threads": 1}})
    est = rp.estimate("smoke", "cpu", study=True)
    assert est["seconds_per_epoch"] == 4.0 and est["jobs"] == 2 and "2 at a time" in est["seconds_per_epoch_source"]
    assert est["training_seconds"] == pytest.approx(round((n_runs - 2 + p.folds * heavier) * p.epochs) * 4.0 / 2)
    assert rp.estimate("smoke", "cpu")["jobs"] == 1  # no study: notebook 04's runs, one after another


def test_unknown_profile_is_a_user_error():
    import argparse

    with pytest.raises(BcdetError, match="Unknown profile"):
        cli_reproduce(argparse.Namespace(profile="gpu-cluster", out=None))


def test_a_smaller_study_reaches_only_the_notebooks_that_declare_it(tmp_path, monkeypatch):
    plain = write_nb(tmp_path / "04_plain.ipynb", "print('plain', profile, 'seeds' in dir())")
    study = write_nb(tmp_path / "05_study.ipynb", "print('study', profile, seeds, kinds)",
                     params='profile = "laptop"\nstudy = False\nseeds = None\nkinds = None')
    monkeypatch.setattr(rp, "load_reproduced_study", lambda *a: None)  # this notebook 05 trains no study
    metrics = rp.reproduce("smoke", out=tmp_path / "runs", notebooks=[plain, study], echo=False,
                           seeds=[0], kinds=["grouped"], study=True)
    folder = tmp_path / "runs" / "smoke"
    assert "plain smoke False" in (folder / "notebooks" / "04_plain.ipynb").read_text()
    assert "study smoke [0] ['grouped']" in (folder / "notebooks" / "05_study.ipynb").read_text()
    rep = metrics["reproduce"]
    assert rep["command"] == "bcdet reproduce --profile smoke --study --seeds 0 --kinds grouped"
    assert rep["study"]["seeds"] == [0] and rep["study"]["splits"] == ["grouped"]
    assert rep["estimate"]["runs"] == rep["study"]["runs"]  # the smaller study (one seed, one split) and no more
    assert "smaller than the profile's own study" in (folder / "report.md").read_text()


@pytest.mark.parametrize("study, given, why", [
    (None, {"seeds": [1]}, "--seeds only shapes the cross-validated study of notebook 05, which profile 'smoke' "
                           "does not run by default: add --study to run it, or leave it out. Nothing was run."),
    (False, {"kinds": ["grouped"], "ladder": False}, "--kinds and --no-ladder only shape the cross-validated "
                                                      "study of notebook 05, which --no-study turns off"),
])
def test_study_options_without_the_study_are_refused(tmp_path, capsys, study, given, why):
    """Issue #27 case 8: ``bcdet reproduce --profile smoke --seeds 1`` ignored --seeds without a word."""
    nb = write_nb(tmp_path / "05_study.ipynb", "print('ran')", params='profile = "laptop"\nseeds = None')
    with pytest.raises(BcdetError) as err:
        rp.reproduce("smoke", out=tmp_path / "runs", notebooks=[nb], echo=False, study=study, **given)
    assert why in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_a_study_asked_for_but_not_written_fails_without_a_report(tmp_path):
    """--study runs notebook 05 with study=True; if no study.json of this reproduction comes back, the
    report (which would describe another study, or none) is not written."""
    plain = write_nb(tmp_path / "05_study.ipynb", "print('study', profile, study)",
                     params='profile = "laptop"\nstudy = False')
    with pytest.raises(BcdetError, match="notebook 05 wrote no .*study.json"):
        rp.reproduce("smoke", out=tmp_path / "runs", notebooks=[plain], echo=False, study=True)
    folder = tmp_path / "runs" / "smoke"
    assert "study smoke True" in (folder / "notebooks" / "05_study.ipynb").read_text()
    assert not (folder / "report.md").exists() and not (folder / "metrics.json").exists()
    nothing = write_nb(tmp_path / "05_nothing.ipynb", "print(profile)")  # declares no `study` at all
    with pytest.raises(BcdetError, match="No notebook declares the parameter 'study'"):
        rp.reproduce("smoke", out=tmp_path / "runs2", notebooks=[nothing], echo=False, study=True)
    assert not (tmp_path / "runs2" / "smoke" / "notebooks").exists()  # refused before anything ran


def test_the_study_runs_by_default_for_paper_and_laptop_only():
    assert rp.runs_study("paper") and rp.runs_study("laptop")
    assert not rp.runs_study("class") and not rp.runs_study("smoke")
    assert rp.runs_study("class", True) and not rp.runs_study("laptop", False)
    assert rp.reproduce_command("laptop") == "bcdet reproduce --profile laptop"
    assert rp.reproduce_command("laptop", study=False) == "bcdet reproduce --profile laptop --no-study"
    assert rp.reproduce_command("class", [0], random_seeds=[0], study=True) == \
        "bcdet reproduce --profile class --study --seeds 0 --random-seeds 0"


def test_bad_study_is_a_user_error():
    import argparse

    with pytest.raises(BcdetError, match="kinds must be"):
        cli_reproduce(argparse.Namespace(profile="smoke", out=None, seeds=None, kinds=["leaky"]))


def test_a_copied_checkout_names_its_commit_through_the_environment(monkeypatch):
    """A tree copied without .git (to a GPU machine) still records the commit it came from."""
    from bcdet_helpers.runinfo import environment_info, git_commit

    monkeypatch.setenv("BCDET_GIT_COMMIT", "abc1234")
    assert git_commit() == "abc1234" and environment_info()["git_commit"] == "abc1234"
    monkeypatch.delenv("BCDET_GIT_COMMIT")
    assert git_commit() != "abc1234"


def test_a_record_made_with_changed_code_says_dirty(monkeypatch, tmp_path):
    """Changed code in bcdet_helpers/ (not an untracked scratch file) marks the commit -dirty."""
    import subprocess

    from bcdet_helpers import runinfo

    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,  # noqa: E731
                                    check=True, capture_output=True, text=True).stdout.strip()
    (tmp_path / "bcdet_helpers").mkdir()
    (tmp_path / "bcdet_helpers" / "m.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    monkeypatch.delenv("BCDET_GIT_COMMIT", raising=False)
    monkeypatch.setattr(runinfo, "project_root", lambda: tmp_path)
    head = git("rev-parse", "--short", "HEAD")
    (tmp_path / "scratch.py").write_text("untracked\n")
    assert runinfo.git_commit() == head
    (tmp_path / "bcdet_helpers" / "m.py").write_text("x = 2\n")
    assert runinfo.git_commit() == f"{head}-dirty"


# --------------------------------------------------------------------------------------------
# issue #16, case 5: nobody starts a 14-hour job by accident
# --------------------------------------------------------------------------------------------
def test_the_estimate_counts_notebook_04s_runs_of_a_smaller_study(tmp_path, monkeypatch):
    from bcdet_helpers.profiles import get_profile

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path))
    monkeypatch.setattr(pace, "_recorded_seconds_per_epoch", lambda *a: (1.0, "1 run (a stand-in)"))
    small = get_profile("laptop", seeds=[1], kinds=["random"])
    est = rp.estimate(small, "cpu")
    arms, study_arms, folds = len(small.arms), len(small.study_arms), small.folds
    ladder_arms = len(small.ladder_arms)
    # chapter 05: the study's arms (matched too) x 5 folds x seed 1 x random, + each ladder arm's 5 runs with test
    # copies (1 + 2 / (4 x 0.85) = 1.59 times the work: a fold's worth of copies x 2 on top of ~3.4 folds);
    # chapter 04: arms x seed 0 x grouped x fold 0, always
    assert est["runs"] == study_arms * folds + arms + ladder_arms * folds and est["runs_chapter04_only"] == arms
    heavier = 1 + small.ladder_test_copies / ((folds - 1) * (1 - small.val_fraction))
    assert est["training_seconds"] == pytest.approx(round((study_arms * folds + arms + ladder_arms * folds * heavier)
                                                          * small.epochs) / est["jobs"])
    # the full study already holds chapter 04's runs: grouped 3 seeds, random its first seed only, each ladder
    # arm on the random split's other 2 seeds and its 3 seeds with test copies; and the grouped runs again on
    # the second fold partition
    full = rp.estimate(get_profile("laptop"), "cpu")
    assert full["runs"] == study_arms * folds * (3 + 1) + ladder_arms * folds * (2 + 3) + study_arms * folds * 3
    assert full["runs_ladder"] == ladder_arms * folds * 5
    assert rp.estimate(get_profile("laptop"), "cpu", random_seeds=[0, 1, 2])["runs"] == \
        study_arms * folds * (6 + 3) + ladder_arms * folds * 3
    assert rp.estimate(get_profile("laptop"), "cpu", study=False)["runs"] == arms  # --no-study
    lean = rp.estimate(get_profile("laptop"), "cpu", ladder=False)  # --no-ladder: the verdict's runs only
    assert lean["runs"] == study_arms * folds * (3 + 1 + 3) and lean["runs_ladder"] == 0
    assert "--no-ladder" in faster_choices("laptop")


def test_no_ladder_reaches_notebook_05_and_its_command(tmp_path):
    """``--no-ladder`` parses, is named in the recorded command, and reaches the notebook that declares
    ``ladder`` (as False) -- and only when it changes something: never passed by default."""
    from bcdet_helpers.research.cli import build_parser

    args = build_parser().parse_args(["reproduce", "--profile", "laptop", "--no-ladder"])
    assert args.ladder is False and build_parser().parse_args(["reproduce"]).ladder is True
    assert rp.reproduce_command("laptop", ladder=False) == "bcdet reproduce --profile laptop --no-ladder"
    assert rp.reproduce_command("class", ladder=False) == "bcdet reproduce --profile class"  # no study, no ladder
    nb = write_nb(tmp_path / "05_study.ipynb", "print('ladder is', ladder)", params='profile = "laptop"\nladder = True')
    rp.run_notebook(nb, tmp_path / "out" / nb.name, "smoke", echo=False, ladder=False)
    assert "ladder is False" in (tmp_path / "out" / nb.name).read_text()


@pytest.fixture
def long_job(monkeypatch):
    """An estimate of ~317 h (the paper profile's 275-run study on a 2-core CPU), without timing anything."""
    est = {"profile": "paper", "device": "cpu", "runs": 275, "runs_chapter04_only": 0, "runs_done": 0,
           "epochs_per_run": 50, "epochs_to_train": 275 * 50, "n_train_images": 557, "seconds_per_epoch": 83.0,
           "seconds_per_epoch_source": "measured now", "training_seconds": 275 * 50 * 83.0}
    monkeypatch.setattr(rp, "estimate", lambda *a, **k: dict(est))
    # the cheaper choices' own estimates: recorded runs where this machine has some, else no timing here
    monkeypatch.setattr(pace, "_measure_seconds_per_epoch", lambda prof, dev, n: 1.0)
    return est


def test_a_long_job_without_a_terminal_needs_an_explicit_opt_in(tmp_path, long_job, capsys):
    nb = write_nb(tmp_path / "01_ok.ipynb", "print('ran')")
    out = tmp_path / "runs"
    with pytest.raises(BcdetError) as err:  # (study=False: a one-cell notebook has no study to run)
        rp.reproduce("paper", out=out, notebooks=[nb], echo=False, study=False)  # pytest's stdin is no terminal
    msg = str(err.value)
    assert "Not started" in msg and "317" in msg and "--yes" in msg and "YES=1" in msg
    assert "--profile laptop" in msg
    assert not (out / "paper").exists()  # nothing ran, not even a folder
    rp.reproduce("paper", out=out, notebooks=[nb], echo=False, yes=True, study=False)
    assert (out / "paper" / "notebooks" / "01_ok.ipynb").exists()


@pytest.mark.parametrize("answer, starts", [("", False), ("n", False), ("y", True), ("yes", True)])
def test_on_a_terminal_a_long_job_asks_and_defaults_to_no(tmp_path, long_job, monkeypatch, capsys, answer, starts):
    asked = []
    monkeypatch.setattr("bcdet_helpers.research.long_job._interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    nb = write_nb(tmp_path / "01_ok.ipynb", "print('ran')")
    if starts:
        rp.reproduce("paper", out=tmp_path / "runs", notebooks=[nb], echo=False, study=False)
    else:
        with pytest.raises(BcdetError, match="Not started.*--yes"):
            rp.reproduce("paper", out=tmp_path / "runs", notebooks=[nb], echo=False, study=False)
    assert len(asked) == 1 and "[y/N]" in asked[0]
    assert "--profile laptop" in capsys.readouterr().out  # the faster profile is named before the question
    assert (tmp_path / "runs" / "paper" / "notebooks" / "01_ok.ipynb").exists() == starts


def test_make_reproduce_passes_yes_through():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "-C", str(root), "reproduce", "YES=1"],
                         capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in dry.splitlines() if "bcdet reproduce" in ln)
    assert "--yes" in line
    dry = subprocess.run(["make", "-n", "-C", str(root), "reproduce"],
                         capture_output=True, text=True, check=True).stdout
    assert "--yes" not in next(ln for ln in dry.splitlines() if "bcdet reproduce" in ln)


def test_a_smoke_report_says_its_numbers_mean_nothing(tmp_path):
    """Issue #16 case 9: 'ours 30 % vs paper 90 %' from the smoke profile is not a finding."""
    metrics = {"profile": "smoke", "runs": [{"split": "grouped", "schedule": "switching", "seed": 0, "fold": 0,
                                             "accuracy": 0.3, "macro_f1": 0.2, "n_test": 15}]}
    text = rp.write_report(metrics, tmp_path).read_text()
    head, table = text.split("## Headline", 1)
    assert "Smoke profile: these numbers mean nothing" in head and "4 epochs" in head
    assert "| ours, switching | 30.0%" in table
    assert "checks that the code runs" in table.split("| ours")[0]  # said before the first number
    metrics["profile"] = "laptop"
    assert "mean nothing" not in rp.write_report(metrics, tmp_path).read_text()


# --------------------------------------------------------------------------------------------
# issue #27 case 6: Ctrl-C while a notebook runs
# --------------------------------------------------------------------------------------------
CTRL_C_DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a test runner may ignore SIGINT)
from pathlib import Path
from bcdet_helpers.research import reproduce as rp
from bcdet_helpers.research.cli import main
rp.course_notebooks = lambda folder=None: [Path(sys.argv[1])]
rp.estimate = lambda *a, **k: {"training_seconds": 0.0}  # no timing run
rp.print_estimate = lambda est: None
sys.exit(main(["reproduce", "--profile", "smoke", "--out", sys.argv[2]]))
"""


def test_ctrl_c_during_a_notebook_prints_one_line_and_leaves_no_kernel(tmp_path, busi_dir):
    """Ctrl-C used to print ``bcdet: interrupted`` and then the kernel's ZMQ traceback or asyncio's
    ``DeadKernelError`` ones (nbclient shut the busy kernel down gracefully)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    nb = write_nb(tmp_path / "01_busy.ipynb", "import os, time\nprint('kernel', os.getpid(), flush=True)\ntime.sleep(120)")
    out = tmp_path / "runs"
    env = {**os.environ, "BCDET_DATA": str(busi_dir)}
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_DRIVER, str(nb), str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    kernel = None
    for line in proc.stdout:  # the notebook's own output, echoed while its cell runs
        if line.startswith("kernel "):
            kernel = int(line.split()[1])
            break
    assert kernel, proc.communicate(timeout=60)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, err = proc.communicate(timeout=60)
    kernel_log = "[IPKernelApp] WARNING | Kernel is running over TCP"  # the kernel's startup note, in every run
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(kernel_log)]
    assert proc.returncode == 130 and lines == ["bcdet: interrupted"], err
    assert not (out / "smoke" / "report.md").exists()
    for _ in range(50):  # the kernel was killed, not left running
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the kernel {kernel} still runs")


# --------------------------------------------------------------------------------------------
# issue #27, case 7: the cheap path first -- `class` everywhere, honest choices printed once, a stable estimate
# --------------------------------------------------------------------------------------------
def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subparsers(sub)


def test_class_is_listed_wherever_profiles_are_listed():
    """Every ``--profile`` help, ``make help`` and the README's two commands name every profile,
    ``class`` (the minutes-long path) included; the CLI takes the names from ``profiles.PROFILES``."""
    import subprocess
    from pathlib import Path

    from bcdet_helpers.research.cli import build_parser
    from bcdet_helpers.profiles import PROFILES

    helps = {name: a.help for name, sub in _subparsers(build_parser()) for a in sub._actions
             if "--profile" in a.option_strings}
    assert {"train", "tune", "reproduce", "publish", "ladder"} <= set(helps)
    for name, text in helps.items():
        assert all(p in text for p in PROFILES), f"bcdet {name} --profile: {text}"
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(["make", "-s", "-C", str(root), "help"], capture_output=True, text=True, check=True).stdout
    assert "PROFILE=" + "|".join(PROFILES) in shown
    head = "\n".join((root / "README.md").read_text().splitlines()[:30])
    assert "PROFILE=class" in head and "make reproduce" in head


def _fake_pace(monkeypatch, tmp_path, cores=2):
    """No finished runs, no committed ones, and a fixed pace per profile instead of timing steps."""
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(pace, "reference_run_folders", lambda profile: [], raising=False)  # (older code: none)
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    per_epoch = {"paper": 40.0, "laptop": 8.0, "class": 1.5, "smoke": 0.1}
    monkeypatch.setattr(pace, "_measure_seconds_per_epoch", lambda prof, dev, n: per_epoch[prof.name])


def test_a_refusal_on_a_cpu_names_class_and_laptop_once_with_their_estimates(tmp_path, monkeypatch, capsys):
    from bcdet_helpers.research.report import fmt_duration

    _fake_pace(monkeypatch, tmp_path)
    nb = write_nb(tmp_path / "01_ok.ipynb", "print('ran')", params='profile = "laptop"\nstudy = False\nladder = True')
    with pytest.raises(BcdetError) as err:
        rp.reproduce("paper", out=tmp_path / "out", notebooks=[nb], echo=False, device="cpu")
    said = capsys.readouterr().out + "\n" + str(err.value)
    assert "Not started" in str(err.value)
    for profile in ("class", "laptop"):
        assert said.count(f"--profile {profile} ") + said.count(f"--profile {profile}\n") == 1, said  # printed once
        assert said.count(f"PROFILE={profile})") == 1, said
        took = fmt_duration(plan.estimate(profile, "cpu")["training_seconds"])
        line = next(ln for ln in said.splitlines() if f"--profile {profile} " in ln or ln.endswith(f"--profile {profile}"))
        assert f"~{took} " in line, line  # each with its own estimate
    assert said.index("--profile class") < said.index("--profile laptop")  # the cheapest first
    assert "--profile paper --no-ladder" in said  # and the smaller studies of the profile asked for


def test_a_job_that_starts_anyway_names_the_choices_once_and_a_long_one_only_in_the_refusal(tmp_path, monkeypatch,
                                                                                             capsys):
    _fake_pace(monkeypatch, tmp_path)
    est = plan.estimate("paper", "cpu")
    print_estimate(est)
    assert "--profile class" not in capsys.readouterr().out  # the refusal names them (above)
    est = dict(est, training_seconds=2400.0)  # 40 min: starts without asking, the choices said once here
    print_estimate(est)
    confirm_long_job(est)
    out = capsys.readouterr().out
    assert out.count("--profile class") == 1 and "No GPU found" in out


def test_the_estimate_comes_from_the_recorded_runs_of_the_same_kind_of_machine(tmp_path, monkeypatch):
    """The class estimate said ~31 min once and 83 s on a retry: steps timed on a busy CPU. Whole runs
    recorded on the same kind of machine give the same number every time, and say so."""
    import statistics
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "results"
    recorded = [json.loads(p.read_text()) for p in (results / "class" / "runs").glob("*/result.json")]
    if not recorded:
        pytest.skip("no recorded class runs under results/")
    cores = recorded[0]["environment"]["cpu_count"]
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr("os.cpu_count", lambda: cores)

    def no_timing(*a):
        raise AssertionError("timed steps although runs were recorded on this kind of machine")

    monkeypatch.setattr(pace, "_measure_seconds_per_epoch", no_timing)
    first, again = plan.estimate("class", "cpu"), plan.estimate("class", "cpu")
    assert first == again
    assert first["seconds_per_epoch"] == statistics.median(r["seconds_per_epoch"] for r in recorded)
    assert f"{len(recorded)} runs on a {cores}-core CPU in results/class/" in first["seconds_per_epoch_source"]
    assert first["seconds_per_epoch_source"].startswith("recorded")
    # another kind of machine does not borrow them: it times warmed steps now, and says so
    monkeypatch.setattr("os.cpu_count", lambda: cores + 6)
    monkeypatch.setattr(pace, "_measure_seconds_per_epoch", lambda prof, dev, n: 3.0)
    other = plan.estimate("class", "cpu")
    assert other["seconds_per_epoch"] == 3.0 and other["seconds_per_epoch_source"].startswith("measured now")


def test_a_measured_estimate_is_the_median_of_warmed_steps():
    """A cold first step (allocation, kernel choice) or one slowed by another job does not move it."""
    steps = iter([30.0, 10.0, 1.0, 1.1, 9.0, 0.9, 1.0])  # seconds each call takes
    now = [0.0]

    def step():
        now[0] += next(steps)

    assert pace._steady_seconds(step, warmup=2, repeats=5, budget_s=100, clock=lambda: now[0]) == pytest.approx(1.0)
    steps = iter([30.0, 10.0, 1.0, 1.1, 9.0, 0.9, 1.0])  # past the time budget: three timed steps, no more
    assert pace._steady_seconds(step, warmup=2, repeats=5, budget_s=5, clock=lambda: now[0]) == pytest.approx(1.1)


def test_report_sets_busbra_beside_busi_from_chapter_06s_record(tmp_path):
    """#30: the report's transfer section reads chapter 06's external.json: the carried-over threshold, patient
    intervals, per device -- and a number the set cannot support is a dash, never a zero."""
    est = lambda v, lo, hi: {"value": v, "low": lo, "high": hi}  # noqa: E731
    overall = lambda n, auc: {"name": "all", "n_images": n, "n_patients": n // 2, "auc": est(auc, auc - 0.1, auc + 0.1),  # noqa: E731
                              "sensitivity": est(0.9, 0.8, 1.0), "specificity": est(0.3, 0.2, 0.4),
                              "predicted_normal": est(0.05, 0.0, 0.1), "ece": {"value": None}}
    record = {"busbra": True, "split": "grouped", "fold": 0, "seed": 0, "target_sensitivity": 0.9, "scores": {
        "switching": {
            "BUSI test fold": {"overall": overall(120, 0.86), "per_device": [], "resampled": "patients"},
            "BUS-BRA": {"overall": overall(1875, 0.64), "resampled": "patients", "min_device_images": 100,
                        "devices_too_small": {"U-Systems": 25},
                        "per_device": [{**overall(902, 0.71), "name": "GE Logiq 7"}]}}}}
    (tmp_path / "external.json").write_text(json.dumps(record))
    text = rp.write_report(_fold0_metrics(), tmp_path).read_text()
    assert "## Another hospital: BUS-BRA" in text and "carried over, never re-chosen" in text
    assert "| switching | BUS-BRA | 1875 (937) | 0.64 [0.54, 0.74] | 0.90 [0.80, 1.00] | 0.30 [0.20, 0.40] |" in text
    assert "| switching | BUSI test fold | 120 (60) | 0.86 [0.76, 0.96]" in text
    assert "| switching | GE Logiq 7 | 902 (451) | 0.71 [0.61, 0.81]" in text and "U-Systems 25" in text
    assert "0.05 [0.00, 0.10] | – |" in text  # ECE missing: a dash
    (tmp_path / "external.json").write_text(json.dumps({**record, "busbra": False}))
    assert "Another hospital" not in rp.write_report(_fold0_metrics(), tmp_path).read_text()
