"""The leakage ladder (issue #19) on a constructed study folder: every rung checked against an
independent computation from the CSVs, and the inflation rungs can only climb."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_study import FOLDS, SEEDS, write_folder

from bcdet_helpers.research import study as sd
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.paths import CLASSES

P_COLS = [f"p_{c}" for c in CLASSES]
ARM = "constant"  # 70 % on the random split: the constructed epoch 2 (98 %) clearly beats its final weights
EPOCHS = 4
BEST_EPOCH = 2  # the constructed records make epoch 2 the best on test


def write_records(root, arm=ARM, kind="random"):
    """inflation/<run>.csv for every run of ``kind``: the last epoch is what the OOF file predicts,
    epoch 2 is right 98 % of the time, the others 40 %."""
    rng = np.random.default_rng(1)
    (root / "inflation").mkdir(exist_ok=True)
    oof = sd.load_predictions(root)
    oof = oof[(oof.arm == arm) & (oof.kind == kind) & (oof.weights == "last")]
    for (fold, seed), g in oof.groupby(["fold", "seed"]):
        y = g["y"].to_numpy()
        rec = pd.DataFrame({"file": g["file"].to_numpy(), "y": y})
        for e in range(1, EPOCHS):
            right = rng.random(len(y)) < (0.98 if e == BEST_EPOCH else 0.4)
            rec[f"e{e}"] = np.where(right, y, (y + 1) % 3)
        rec[f"e{EPOCHS}"] = g[P_COLS].to_numpy().argmax(1)
        rec.to_csv(root / "inflation" / f"{arm}-{kind}-fold{fold}-seed{seed}.csv", index=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = write_folder(tmp_path_factory.mktemp("ladder"))
    write_records(root)
    return root


def _acc(pred, y):
    return float((np.asarray(pred) == np.asarray(y)).mean())


def test_every_rung_matches_an_independent_computation(folder):
    table = sd.leakage_ladder(folder, ARM, n_boot=200).set_index("rung")
    folds = pd.read_csv(folder / "folds.csv")
    conflicts = set(folds.loc[folds.conflict, "file"])
    oof = sd.load_predictions(folder)
    oof = oof[(oof.arm == ARM) & (oof.weights == "last") & ~oof.file.isin(conflicts)]
    for rung, kind in (("honest", "grouped"), ("image_folds", "random")):
        o = oof[oof.kind == kind]
        assert table.loc[rung, "accuracy"] == pytest.approx(_acc(o[P_COLS].to_numpy().argmax(1), o.y))
        assert table.loc[rung, "low"] < table.loc[rung, "accuracy"] < table.loc[rung, "high"]
    # test_epoch: per run the epoch with the best test accuracy on the scored images
    chosen = []
    for (fold, seed) in [(f, s) for s in SEEDS for f in range(FOLDS)]:
        rec = pd.read_csv(folder / "inflation" / f"{ARM}-random-fold{fold}-seed{seed}.csv")
        rec = rec[~rec.file.isin(conflicts)]
        best = max(range(1, EPOCHS + 1), key=lambda e: (_acc(rec[f"e{e}"], rec.y), -e))
        assert best == BEST_EPOCH
        chosen.append(rec.assign(pred=rec[f"e{best}"], fold=fold, seed=seed))
    chosen = pd.concat(chosen)
    assert table.loc["test_epoch", "accuracy"] == pytest.approx(_acc(chosen.pred, chosen.y))
    per_seed = chosen.groupby("seed").apply(lambda d: _acc(d.pred, d.y), include_groups=False)
    seed = int(per_seed.idxmax())
    assert table.loc["best_seed", "accuracy"] == pytest.approx(per_seed.max())
    per_fold = chosen[chosen.seed == seed].groupby("fold").apply(lambda d: _acc(d.pred, d.y), include_groups=False)
    assert table.loc["lucky_fold", "accuracy"] == pytest.approx(per_fold.max())
    assert table.loc["lucky_fold", "n_runs"] == FOLDS and table.loc["test_epoch", "n_runs"] == FOLDS * len(SEEDS)


def test_the_inflation_rungs_only_climb_and_are_labelled(folder):
    table = sd.leakage_ladder(folder, ARM, n_boot=200)  # a study without the "augmented" runs: five rungs
    assert table["rung"].tolist() == [r.name for r in sd.RUNGS[:5]]
    assert sd.not_measured(table) == ["augment_before_split"]
    assert table["label"].tolist() == ["honest", "leakage", "inflation", "inflation", "inflation"]
    assert (table["gain"].iloc[2:] >= 0).all()
    assert table["gain"].iloc[2] > 0.2  # epoch 2 (98 %) beats the final weights (~70 %)
    assert table["gain"].iloc[1] == pytest.approx(table["accuracy"].iloc[1] - table["accuracy"].iloc[0])
    assert np.isnan(table["gain"].iloc[0])


def test_augment_before_split_redoes_the_choices_on_the_runs_with_test_copies(folder, tmp_path):
    """Rung 6 reads inflation/<arm>-augmented-fold<f>-seed<s>.csv: here those runs learned their test
    images (epoch 3 right on all of them, seed 1 fold 0 the luckiest elsewhere), so the rung is 100 %."""
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(folder, copy)
    for fold, seed in [(f, s) for s in SEEDS for f in range(FOLDS)]:
        rec = pd.read_csv(copy / "inflation" / f"{ARM}-random-fold{fold}-seed{seed}.csv")
        rec["e3"] = rec["y"]
        rec.to_csv(copy / "inflation" / f"{ARM}-{sd.AUGMENTED}-fold{fold}-seed{seed}.csv", index=False)
    table = sd.leakage_ladder(copy, ARM, n_boot=200).set_index("rung")
    assert list(table.index) == [r.name for r in sd.RUNGS] and table.loc["augment_before_split", "label"] == "inflation"
    assert table.loc["augment_before_split", "accuracy"] == 1.0 and table.loc["augment_before_split", "n_runs"] == FOLDS
    assert "the leak alone" in table.loc["augment_before_split", "note"]
    assert table.loc["augment_before_split", "gain"] == pytest.approx(1.0 - table.loc["lucky_fold", "accuracy"])
    # one of those runs missing: named, with what to do
    (copy / "inflation" / f"{ARM}-{sd.AUGMENTED}-fold2-seed{SEEDS[0]}.csv").unlink()
    with pytest.raises(BcdetError, match=f"{ARM}-augmented-fold2-seed{SEEDS[0]}.csv.*not trained yet"):
        sd.leakage_ladder(copy, ARM)


def test_a_missing_test_record_is_named(folder, tmp_path):
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(folder, copy)
    (copy / "inflation" / f"{ARM}-random-fold1-seed0.csv").unlink()
    with pytest.raises(BcdetError, match=f"{ARM}-random-fold1-seed0.csv"):
        sd.leakage_ladder(copy, ARM)
    with pytest.raises(BcdetError, match="both kinds"):
        sd.leakage_ladder(copy, arm="onecycle")
    # a study in progress: the random split has run for another arm only -- named, not a KeyError
    for f in (copy / "oof").glob(f"{ARM}-random-*.csv"):
        f.unlink()
    for f in (copy / "val").glob(f"{ARM}-random-*.csv"):
        f.unlink()
    (copy / "study.json").unlink(missing_ok=True)
    with pytest.raises(BcdetError, match=f"no random runs of '{ARM}'"):
        sd.leakage_ladder(copy, ARM)


def test_write_ladder_writes_table_json_and_waterfall(folder, tmp_path):
    import json

    table = sd.write_ladder(folder, tmp_path / "ladder", ARM, command="bcdet ladder --study X", n_boot=100)
    assert sorted(p.name for p in (tmp_path / "ladder").iterdir()) == [".bcdet-output", "README.md", "ladder.csv",
                                                                      "ladder.json", "waterfall.png"]
    meta = json.loads((tmp_path / "ladder" / "ladder.json").read_text())
    assert meta["command"] == "bcdet ladder --study X" and meta["arm"] == ARM and meta["paper_accuracy"] > 0.8
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ladder" / "ladder.csv"), table, check_dtype=False)
    readme = (tmp_path / "ladder" / "README.md").read_text()  # its table is ladder.csv's, never typed by hand
    assert "bcdet ladder --study X" in readme and f"`{meta['commit']}`" in readme
    for r in table.itertuples():
        assert f"| {r.rung} | {100 * r.accuracy:.1f} % [{100 * r.low:.1f}, {100 * r.high:.1f}] |" in readme
    assert sd.ladder.reaches(table, meta["paper_accuracy"])[1:] in readme


# ------------------------------------------------------------------ does the order matter? (#28)
@pytest.fixture(scope="module")
def both(folder, tmp_path_factory):
    """The study with the grouped runs' test records too: every set of habits can be scored."""
    import shutil

    copy = tmp_path_factory.mktemp("orders") / "study"
    shutil.copytree(folder, copy)
    write_records(copy, kind="grouped")
    return copy


def test_each_habits_gain_over_every_order_adds_up_and_matches_the_ladder(both):
    from bcdet_helpers.research.study.ladder_orders import HABITS, order_gains

    ladder = sd.leakage_ladder(both, ARM, n_boot=100).set_index("rung")
    orders = order_gains(both, ARM).set_index("habit")
    assert list(orders.index) == list(HABITS) and (orders["orders"] == 24).all()
    for h in HABITS:  # the ladder's own order gives the ladder's own gains
        assert orders.loc[h, "in_ladder_order"] == pytest.approx(ladder.loc[h, "gain"]), h
        assert orders.loc[h, "lowest"] <= orders.loc[h, "mean_over_orders"] <= orders.loc[h, "highest"], h
    # the means over the orders share out exactly the gain of all four habits together
    total = ladder.loc["lucky_fold", "accuracy"] - ladder.loc["honest", "accuracy"]
    assert orders["mean_over_orders"].sum() == pytest.approx(total)
    # the order matters here: a lucky fold gains more on the grouped final weights than at the top of the ladder
    assert orders.loc["lucky_fold", "highest"] > orders.loc["lucky_fold", "in_ladder_order"]


def test_a_set_of_habits_is_scored_by_its_own_rule(both):
    from bcdet_helpers.research.study.ladder_orders import habit_accuracy, test_records

    folds = pd.read_csv(both / "folds.csv")
    scored = set(folds.loc[~folds.conflict, "file"])
    runs = [(f, s) for s in SEEDS for f in range(FOLDS)]
    grouped, random = (test_records(both, ARM, k, runs, scored) for k in ("grouped", "random"))
    # a lucky fold alone: the grouped split's final weights, the fold whose images (pooled over seeds) score best
    right = grouped["final"] == grouped["y"]
    assert habit_accuracy(grouped, random, {"lucky_fold"}) == pytest.approx(right.groupby(grouped["fold"]).mean().max())
    assert habit_accuracy(grouped, random, set()) == pytest.approx(right.mean())
    assert habit_accuracy(grouped, random, {"image_folds"}) == pytest.approx((random["final"] == random["y"]).mean())
    assert habit_accuracy(grouped, random, {"test_epoch"}) > 0.9  # epoch 2 is right 98 % of the time


def test_the_test_copy_leak_is_stated_alone_at_final_weights(both, tmp_path):
    import shutil

    from bcdet_helpers.research.study.ladder_orders import order_gains

    copy = tmp_path / "study"
    shutil.copytree(both, copy)
    for fold, seed in [(f, s) for s in SEEDS for f in range(FOLDS)]:
        rec = pd.read_csv(copy / "inflation" / f"{ARM}-random-fold{fold}-seed{seed}.csv")
        rec[f"e{EPOCHS}"] = rec["y"]  # the runs with test copies end right on every test image
        rec.to_csv(copy / "inflation" / f"{ARM}-{sd.AUGMENTED}-fold{fold}-seed{seed}.csv", index=False)
    row = order_gains(copy, ARM).set_index("habit").loc["augment_before_split"]
    plain = pd.concat(pd.read_csv(p) for p in (copy / "inflation").glob(f"{ARM}-random-*.csv"))
    folds = pd.read_csv(copy / "folds.csv")
    plain = plain[~plain.file.isin(folds.loc[folds.conflict, "file"])]
    final = 1.0 - _acc(plain[f"e{EPOCHS}"], plain.y)
    assert f"{100 * final:+.1f} points at final weights" in row["note"] and row["orders"] == 0


def test_the_recorded_ladder_says_whether_the_order_was_measured(folder, both, tmp_path):
    sd.write_ladder(both, tmp_path / "both", ARM, n_boot=100)
    readme = (tmp_path / "both" / "README.md").read_text()
    orders = pd.read_csv(tmp_path / "both" / "orders.csv")
    assert "## Does the order matter?" in readme and len(orders) == 4
    assert all(f"| {r.habit} | {100 * r.in_ladder_order:+.1f} | {100 * r.mean_over_orders:+.1f} |" in readme
               for r in orders.itertuples())
    sd.write_ladder(folder, tmp_path / "random-only", ARM, n_boot=100)  # grouped runs without test records
    readme = (tmp_path / "random-only" / "README.md").read_text()
    assert "Not measured:" in readme and f"{ARM}-grouped-fold0-seed{SEEDS[0]}.csv" in readme
    assert not (tmp_path / "random-only" / "orders.csv").exists()


def test_the_ladder_arm_gets_every_seed_on_the_random_split():
    """The best_seed rung needs several random-split seeds of a ladder arm; the study design adds them, for
    every tuned arm at laptop and paper width (#28: the ladder's headline must hold for all arms)."""
    from bcdet_helpers.research.plan import study_runs, study_seeds
    from bcdet_helpers.profiles import get_profile

    laptop = get_profile("laptop")
    seeds_of = study_seeds(laptop)
    assert seeds_of == {"grouped": [0, 1, 2], "random": [0]}
    arms = laptop.ladder_arms
    assert set(arms) == {"constant", "decay", "switching", "onecycle"}
    assert sd.ladder_extra_runs(laptop, seeds_of) == {a: {"random": [1, 2], sd.AUGMENTED: [0, 1, 2]} for a in arms}
    runs = study_runs(laptop)
    first = [r for r in runs if r.partition == 0]  # a second partition repeats only the grouped runs
    # 5 arms (matched too) x 5 folds x (3 grouped + 1 random seed), + 4 ladder arms x 5 folds x (2 seeds + 3 copies)
    assert len(first) == 5 * 5 * 4 + 4 * 5 * (2 + 3) and len(set(runs)) == len(runs)
    assert {(r.arm, r.seed) for r in runs if r.kind == "random" and r.seed > 0} == {(a, s) for a in arms for s in (1, 2)}
    assert {(r.arm, r.seed) for r in runs if r.kind == sd.AUGMENTED} == {(a, s) for a in arms for s in (0, 1, 2)}
    assert sd.ladder_extra_runs(laptop, study_seeds(laptop, [0, 1, 2])) == {a: {sd.AUGMENTED: [0, 1, 2]} for a in arms}
    assert sd.ladder_extra_runs(get_profile("smoke"), study_seeds(get_profile("smoke"))) == {sd.LADDER_ARM: {sd.AUGMENTED: [0]}}
    assert sd.ladder_extra_runs(get_profile("class"), study_seeds(get_profile("class"))) == {}  # no random split


# ------------------------------------------------- the ladder writes only where asked, from its own profile (#27)
def test_the_ladder_refuses_a_study_of_another_profile(folder, tmp_path, capsys):
    """Issue #27 case 2: `bcdet ladder --profile paper --study runs/smoke/cv` overwrote the paper's
    recorded ladder with smoke numbers. A study whose design.json names another profile is refused in one
    line that names both, and nothing is written."""
    from bcdet_helpers.research.cli import main

    out = tmp_path / "out"
    assert main(["ladder", "--profile", "paper", "--study", str(folder), "--arm", ARM, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bcdet: error: {folder} is a study of the 'handmade' profile, not 'paper': pass "
                          "--profile handmade") and len(err.strip().splitlines()) == 1  # no traceback
    assert not out.exists()


def test_the_ladder_writes_to_runs_and_records_only_when_asked(folder, tmp_path, monkeypatch, capsys):
    """Issue #27 case 2: even the README's own `bcdet ladder --profile laptop` rewrote the committed
    results/<profile>-ladder/. It now writes runs/<profile>/ladder/; `--record` writes results/, and a
    folder it did not write, or committed records, only with --force."""
    import shutil
    import subprocess

    from bcdet_helpers import paths
    from bcdet_helpers.research.cli import main

    import dataclasses

    monkeypatch.setattr(sd.ladder, "DEFAULTS", dataclasses.replace(sd.ladder.DEFAULTS, bootstrap=100))  # quick
    project = tmp_path / "project"
    monkeypatch.setattr(paths, "project_root", lambda: project)
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    base = ["ladder", "--profile", "handmade", "--arm", ARM, "--study", str(folder)]
    assert main(base) == 0
    assert (tmp_path / "runs" / "handmade" / "ladder" / "ladder.csv").exists() and not project.exists()
    record = project / "results" / "handmade-ladder"
    assert main([*base, "--record"]) == 0 and (record / "ladder.csv").exists()
    assert "--record" in (record / "README.md").read_text()
    assert main([*base, "--record"]) == 0  # its own record, not committed: written again

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    capsys.readouterr()
    assert main([*base, "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bcdet: error: Refusing to replace {mine}: bcdet did not write it") and "--force" in err
    assert (mine / "README.md").read_text() == "my notes"
    assert main([*base, "--out", str(mine), "--force"]) == 0  # asked for: its files written, the rest kept
    assert "--force: replacing 1 file(s)" in capsys.readouterr().out
    (mine / "notes.txt").write_text("kept")
    assert main([*base, "--out", str(mine)]) == 2  # still not its folder: a forced write does not claim it
    capsys.readouterr()

    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        subprocess.run(["git", "add", "results"], cwd=project, check=True)
        assert main([*base, "--record"]) == 2
        assert "5 of its files are committed to git" in capsys.readouterr().err  # the 4 and the marker
        assert main([*base, "--record", "--force"]) == 0
        assert f"--force: replacing 4 file(s) in {record} (5 of its files" in capsys.readouterr().out


def test_the_order_figure_and_the_two_ladders_side_by_side(both):
    """Notebook 05's figures: one bar per habit at its mean over the orders, the ladder's own order as dots; the
    leakage ladder beside the improvement ladder on one accuracy scale."""
    from bcdet_helpers import plots
    from bcdet_helpers.research.study.ladder_orders import order_gains

    orders = order_gains(both, ARM)
    ax = plots.habit_orders(orders).axes[0]
    bars = ax.containers[0]
    assert len(bars) == 4 and [round(b.get_width(), 6) for b in bars] == [
        round(100 * v, 6) for v in orders["mean_over_orders"]]
    dots = next(line for line in ax.get_lines() if line.get_label() == "in the ladder's order")
    assert list(dots.get_xdata()) == pytest.approx(list(100 * orders["in_ladder_order"]))
    ladder = sd.leakage_ladder(both, ARM, n_boot=100)
    acc = [0.70, 0.72, 0.71]
    improve = pd.DataFrame({"rung": ["baseline", "imbalance", "ensemble"], "below": ["", "baseline", "imbalance"],
                            "adopted": [True, False, True], "accuracy": acc, "accuracy_low": [a - 0.03 for a in acc],
                            "accuracy_high": [a + 0.03 for a in acc], "accuracy_gain": [np.nan, 0.02, -0.01],
                            "accuracy_gain_low": [np.nan, 0.01, -0.02], "accuracy_gain_high": [np.nan, 0.03, 0.0]})
    left, right = plots.two_ladders(ladder, improve, paper=0.9).axes
    assert left.get_ylim() == right.get_ylim()  # one scale
    assert len(left.patches) >= len(ladder) and len(right.patches) >= len(improve)
    assert "leakage" in left.get_title() and "improvement" in right.get_title()
