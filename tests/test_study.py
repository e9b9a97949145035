"""bcdet_helpers.research.study: folds, out-of-fold predictions, label conflicts, the typed result and its JSON.

Two kinds of test:
* ``evaluate_study`` on a study folder written by hand (known predictions, no training): every
  number is checked against an independent computation from the CSVs;
* the whole CV path under ``smoke`` (1 epoch, 3 folds, 2 arms, both kinds, 1 seed) on a
  generated mini-BUSI with a cross-class duplicate: folds, OOF files, conflicts, clustered bootstrap,
  corrected test -- about half a minute on a 2-core CPU.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fakebusi import make_busi

from bcdet_helpers import evaluate as ev
from bcdet_helpers.research import stats as st
from bcdet_helpers.research import study as sd
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.paths import CLASSES, runs_dir
from bcdet_helpers.profiles import get_profile

P_COLS = [f"p_{c}" for c in CLASSES]
H_COLS = [f"p_{c}_hflip" for c in CLASSES]


# ------------------------------------------------------------------------- a hand-written folder
N, FOLDS, SEEDS = 60, 3, (0, 1)
ACCURACY = {"constant": 0.6, "decay": 0.7, "switching": 0.85}


def _files():
    y = np.arange(N) % 3
    files = [f"{CLASSES[k]}/{CLASSES[k]} ({i}).png" for i, k in enumerate(y)]
    i = np.arange(N)
    group = np.where(i < 36, (i // 6) * 3 + i % 3, i)  # i and i + 3 (same class): 18 pairs; then singletons
    group[[58, 59]] = 1000  # a cross-class pair (malignant + normal): a label conflict
    return files, y, group


def _proba_rows(y, correct, rng, confident=0.7):
    """Probabilities whose arg-max is the truth where ``correct``, else the next class."""
    pred = np.where(correct, y, (y + 1) % 3)
    p = np.full((len(y), 3), (1 - confident) / 2)
    p[np.arange(len(y)), pred] = confident
    return p


def write_folder(root, arms=tuple(ACCURACY), kinds=("grouped", "random"), seeds=SEEDS, seed_shift=None):
    """A study folder as run_study leaves it, with predictions drawn to known accuracies
    (``seed_shift[(arm, seed)]`` added to that arm's accuracy on that seed: seeds that disagree)."""
    rng = np.random.default_rng(0)
    files, y, group = _files()
    conflict = np.isin(group, [1000])
    folds = []
    fold_of = {"grouped": group % FOLDS, "random": np.arange(N) % FOLDS}
    for kind in kinds:
        folds.append(pd.DataFrame({"kind": kind, "fold": fold_of[kind], "file": files,
                                   "label": [CLASSES[k] for k in y], "y": y, "group": group, "conflict": conflict}))
    (root / "oof").mkdir(parents=True)
    (root / "val").mkdir()
    pd.concat(folds).to_csv(root / "folds.csv", index=False)
    runs = []
    for kind in kinds:
        for seed in seeds:
            for fold in range(FOLDS):
                test = np.flatnonzero(fold_of[kind] == fold)
                val = np.flatnonzero(fold_of[kind] != fold)[:10]
                for arm in arms:
                    frames = {"test": [], "val": []}
                    for weights in sd.WEIGHTS:
                        for part, idx in (("test", test), ("val", val)):
                            acc = ACCURACY[arm] + (0.1 if kind == "random" else 0.0) + (seed_shift or {}).get((arm, seed), 0)
                            if part == "val" and weights == "best":
                                acc += 0.1  # chosen on these images
                            ok = rng.random(len(idx)) < acc
                            p = _proba_rows(y[idx], ok, rng)
                            flip_ok = ok | (rng.random(len(idx)) < 0.3)  # the flip rescues some
                            ph = _proba_rows(y[idx], flip_ok, rng, confident=0.9)
                            df = pd.DataFrame({
                                "file": [files[i] for i in idx], "label": [CLASSES[y[i]] for i in idx],
                                "y": y[idx], "group": group[idx], "kind": kind, "fold": fold, "seed": seed,
                                "arm": arm, "weights": weights, "epoch": 50 if weights == "last" else 31,
                                "part": part})
                            df[P_COLS] = p
                            df[H_COLS] = ph
                            df["pred"] = [CLASSES[k] for k in p.argmax(1)]
                            frames[part].append(df)
                    name = f"{arm}-{kind}-fold{fold}-seed{seed}"
                    pd.concat(frames["test"]).to_csv(root / "oof" / f"{name}.csv", index=False)
                    pd.concat(frames["val"]).to_csv(root / "val" / f"{name}.csv", index=False)
                    runs.append({"arm": arm, "kind": kind, "fold": fold, "seed": seed, "n_train": 30 + fold,
                                 "n_val": len(val), "n_test": len(test), "epochs": 50, "best_epoch": 31,
                                 "max_phase_ratio": 1.0, "wall_time_s": 1.0, "seconds_per_epoch": 0.02,
                                 "run": name})
    pd.DataFrame(runs, columns=sd.RUN_COLUMNS).to_csv(root / "runs.csv", index=False)
    (root / "design.json").write_text(json.dumps({"profile": {"name": "handmade"}, "arms": list(arms)}))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def study(folder):
    return sd.evaluate_study(folder, n_boot=300)


def _oof(folder, excluded=True):
    df = sd.load_predictions(folder)
    if excluded:
        df = df[~df["file"].isin(["normal/normal (59).png", "malignant/malignant (58).png"])]
    return df


def _acc(df):
    return float((df[P_COLS].to_numpy().argmax(1) == df["y"].to_numpy()).mean())


def test_label_conflicts_found_listed_and_excluded(folder, study):
    assert sorted(c.file for c in study.conflicts) == ["malignant/malignant (58).png", "normal/normal (59).png"]
    c = {c.file: c for c in study.conflicts}["normal/normal (59).png"]
    assert (c.label, c.other_labels, c.group) == ("normal", ["malignant"], 1000)
    assert (study.n_images, study.n_scored) == (N, N - 2)
    assert all(s.n_images == N - 2 for s in study.scores)
    with_them = sd.evaluate_study(folder, n_boot=50, include_conflicts=True)
    assert with_them.n_scored == N and all(s.n_images == N for s in with_them.scores)
    assert with_them.conflicts == study.conflicts  # listed either way


def test_pooled_scores_match_the_csvs(folder, study):
    oof = _oof(folder)
    for arm in ACCURACY:
        for kind in ("grouped", "random"):
            rows = oof[(oof["arm"] == arm) & (oof["kind"] == kind) & (oof["weights"] == "last")]
            s = study.score(arm, kind)
            m = ev.metrics(rows["y"], rows[P_COLS].to_numpy())
            assert s.accuracy.value == pytest.approx(m["accuracy"])
            assert s.macro_f1.value == pytest.approx(m["macro_f1"])
            assert s.recall["normal"].value == pytest.approx(m["per_class"]["normal"]["recall"])
            assert (s.n_seeds, s.n_predictions) == (2, 2 * (N - 2))
            assert s.accuracy.low < s.accuracy.value < s.accuracy.high
            assert s.n_groups == N - 2 - 18  # 18 pairs of copies count once each
            best = study.score(arm, kind, weights="best")
            assert best.accuracy.value == pytest.approx(_acc(oof[(oof["arm"] == arm) & (oof["kind"] == kind)
                                                               & (oof["weights"] == "best")]))


def test_ensemble_row_averages_seeds_and_flips(folder, study):
    oof = _oof(folder)
    rows = oof[(oof["arm"] == "decay") & (oof["kind"] == "grouped") & (oof["weights"] == "last")]
    p = (rows[P_COLS].to_numpy() + rows[H_COLS].to_numpy()) / 2
    mean = pd.DataFrame(p, index=rows["file"]).groupby(level=0).mean()
    y = rows.groupby("file")["y"].first().reindex(mean.index)
    e = study.score("decay", "grouped", rows="ensemble_tta")
    assert e.n_predictions == e.n_images == N - 2
    assert e.accuracy.value == pytest.approx(float((mean.to_numpy().argmax(1) == y.to_numpy()).mean()))
    assert e.accuracy.value > study.score("decay", "grouped").accuracy.value  # the flips rescue some


def test_paired_differences_per_fold_and_seed_with_the_corrected_test(folder, study):
    oof = _oof(folder)
    runs = pd.read_csv(folder / "runs.csv")
    d = study.difference("switching", "constant", "grouped")
    assert d.question == "the paper's claim" and d.test.n == FOLDS * len(SEEDS) == len(d.per_run)
    by_hand = []
    last = oof[(oof["kind"] == "grouped") & (oof["weights"] == "last")]
    for fold, seed in d.runs:
        run = last[(last["fold"] == fold) & (last["seed"] == seed)]
        by_hand.append(_acc(run[run["arm"] == "switching"]) - _acc(run[run["arm"] == "constant"]))
    assert d.per_run == pytest.approx(by_hand)
    n_train = runs.loc[(runs["kind"] == "grouped") & runs["arm"].isin(["switching", "constant"]), "n_train"].mean()
    n_test = np.mean([r.n_test for r in study.runs if r.kind == "grouped" and r.weights == "last"
                      and r.arm in ("switching", "constant")])
    expect = st.corrected_ttest(by_hand, n_train, n_test)
    assert d.test.t == pytest.approx(expect.t) and d.test.p == pytest.approx(expect.p)
    assert d.test.se > d.test.naive_se  # the correction widens
    assert d.detectable == pytest.approx(st.detectable_difference(expect.se, expect.df))
    pooled = study.score("switching", "grouped").accuracy.value - study.score("constant", "grouped").accuracy.value
    assert d.pooled.value == pytest.approx(pooled)
    assert d.pooled.low < d.pooled.value < d.pooled.high
    assert 0 <= d.power_at_claim <= 1
    # all four questions, both metrics, both kinds, both weights
    assert {(x.a, x.b) for x in study.differences} == {(a, b) for a, b, _ in sd.COMPARISONS
                                                       if {a, b} <= set(ACCURACY)}  # the pairs both of whose arms ran
    assert len(study.differences) == 3 * 2 * 2 * 2
    table = study.differences_table()
    assert len(table) == 3 * 2 and table["half_width"].gt(0).all()


def test_the_verdict_interval_carries_training_variance_when_seeds_disagree(tmp_path):
    """#28: on a generated study whose seeds disagree (one seed's models 15 points better for one arm
    only), the interval that resamples seeds too is wider than the fixed-model one; the verdict's
    analysis is named in the result."""
    arms = ("constant", "switching")
    shift = {("switching", 0): -0.2, ("switching", 2): 0.1}  # switching's seeds disagree, constant's do not
    folder = write_folder(tmp_path / "disagree", arms, ("grouped",), seeds=(0, 1, 2), seed_shift=shift)
    disagree = sd.evaluate_study(folder, n_boot=400)
    assert disagree.verdict_analysis == sd.VERDICT_ANALYSIS and "training replicates" in disagree.verdict_analysis
    d = disagree.difference("switching", "constant", "grouped")
    assert d.training.value == pytest.approx(d.pooled.value)
    assert d.training.half_width > d.pooled.half_width  # seeds that disagree widen the verdict's interval
    score = disagree.score("switching", "grouped")
    assert score.accuracy_training.half_width > score.accuracy.half_width
    assert disagree.score("switching", "grouped", rows="ensemble_tta").accuracy_training is None
    # it reads back, and a version-1 file (no training fields) still loads
    again = sd.from_json(sd.to_json(disagree))
    assert again.difference("switching", "constant").training == d.training
    old = disagree.to_dict()
    old["version"] = 1
    old.pop("verdict_analysis")
    for x in old["differences"]:
        x.pop("training"), x.pop("fold_test")
    for x in old["scores"]:
        x.pop("accuracy_training")
    assert sd.Study.from_dict(old).difference("switching", "constant").training is None


def test_the_fold_test_counts_partitions_times_folds_not_seeds(study):
    """#28: seeds of one fold reuse its training images, so the corrected test averages them first:
    J = partitions x folds (here 1 x 3), not folds x seeds (6)."""
    d = study.difference("switching", "constant", "grouped")
    assert d.test.n == FOLDS * len(SEEDS) and d.fold_test.n == FOLDS and d.fold_test.df == FOLDS - 1
    per_fold = pd.DataFrame({"fold": [f for f, _ in d.runs], "d": d.per_run}).groupby("fold")["d"].mean()
    expect = st.corrected_ttest(per_fold.to_numpy(), d.test.n_train, d.test.n_test)
    assert d.fold_test.p == pytest.approx(expect.p) and d.fold_test.se == pytest.approx(expect.se)
    two = st.repeated_cv_ttest(d.per_run * 2, [f for f, _ in d.runs] * 2, [0] * len(d.runs) + [1] * len(d.runs),
                               n_train=d.test.n_train, n_test=d.test.n_test)
    assert two.n == 2 * FOLDS  # a second partition doubles J; a third seed would not


def test_leakage_gap_is_random_minus_grouped(study):
    g = next(x for x in study.leakage if x.arm == "decay" and x.metric == "accuracy" and x.weights == "last")
    assert g.grouped == pytest.approx(study.score("decay", "grouped").accuracy.value)
    assert g.random == pytest.approx(study.score("decay", "random").accuracy.value)
    assert g.gap.value == pytest.approx(g.random - g.grouped)
    assert g.seeds == list(SEEDS)


def test_weights_check_uses_validation_images_only(folder, study):
    val = sd.load_predictions(folder, "val")
    val = val[~val["file"].isin([c.file for c in study.conflicts])]
    w = next(c for c in study.weights_checks if (c.arm, c.kind) == ("constant", "grouped"))
    rows = val[(val["arm"] == "constant") & (val["kind"] == "grouped")]
    per_run = rows.groupby(["fold", "seed", "weights"]).apply(_acc, include_groups=False).unstack("weights")
    assert w.n_runs == FOLDS * len(SEEDS)
    assert w.last_val_accuracy == pytest.approx(per_run["last"].mean())
    assert w.best_val_accuracy == pytest.approx(per_run["best"].mean())
    assert w.mean_difference == pytest.approx((per_run["best"] - per_run["last"]).mean())
    assert (w.mean_best_epoch, w.epochs) == (31, 50)


def test_coverage_flags_a_missing_fold(tmp_path):
    root = write_folder(tmp_path / "s", arms=("constant", "switching"), kinds=("grouped",), seeds=(0,))
    (root / "oof" / "switching-grouped-fold1-seed0.csv").unlink()
    s = sd.evaluate_study(root, n_boot=50)
    assert not s.complete
    bad = [c for c in s.coverage if not c.complete]
    assert {(c.arm, c.weights) for c in bad} == {("switching", "last"), ("switching", "best")}
    assert bad[0].folds == [0, 2] and bad[0].predicted < bad[0].images
    assert s.difference("switching", "constant").test.n == 2  # only the (fold, seed) pairs both ran
    assert s.leakage == []  # one kind: no gap


def test_json_round_trip_is_exact_and_strict(study, tmp_path):
    text = sd.to_json(study)
    json.loads(text)  # strict JSON: NaN written as null
    back = sd.from_json(text)
    assert isinstance(back.differences[0].test, st.CorrectedTTest)
    assert isinstance(back.scores[0].recall["benign"], st.Interval)
    assert sd.to_json(back) == text
    path = study.save(tmp_path / "study.json")
    assert sd.load_study(tmp_path).score("switching").accuracy.value == study.score("switching").accuracy.value
    data = json.loads(text)
    with pytest.raises(BcdetError, match="version"):
        sd.Study.from_dict({**data, "version": sd.SCHEMA_VERSION + 1})
    with pytest.raises(BcdetError, match="schema"):
        sd.Study.from_dict({**data, "schema": "something else"})
    broken = json.loads(text)
    del broken["scores"][0]["macro_f1"]
    with pytest.raises(BcdetError, match="macro_f1"):
        sd.Study.from_dict(broken)
    broken = json.loads(text)
    broken["differences"][0]["test"]["extra"] = 1
    with pytest.raises(BcdetError, match="extra"):
        sd.Study.from_dict(broken)
    assert path.exists()


def test_label_conflicts_of_an_index():
    index = pd.DataFrame({"file": list("abcdef"), "label": ["benign", "malignant", "benign", "benign", "normal", "benign"],
                          "group": [0, 0, 1, 1, 2, 2]})
    c = sd.label_conflicts(index)
    assert c["file"].tolist() == ["a", "b", "e", "f"]
    assert c["other_labels"].tolist() == [["malignant"], ["benign"], ["benign"], ["normal"]]


# ---------------------------------------------------------------------- the whole path, trained
@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """run_study under smoke on a mini-BUSI (8 images per class; benign (1) == malignant (8)), with the
    leakage ladder's runs of ``constant`` that train on copies of their test images."""
    data = make_busi(tmp_path_factory.mktemp("busi-cv"), 8)
    out = tmp_path_factory.mktemp("cv")
    prof = dataclasses.replace(get_profile("smoke", epochs=1), name="smoke-cv", folds=3)
    # one torch thread: these models are tiny, and on a shared 2-core machine two spinning threads made
    # this fixture 7x slower (36 s vs 5 s for 6 runs under a load average of 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BCDET_DATA", str(data))
            s = sd.run_study(prof, arms=["constant", "onecycle"], kinds=["grouped", "random"], seeds=[0],
                             device="cpu", progress=False, out=out, n_boot=200, jobs=1,
                             extra={"constant": {sd.AUGMENTED: [0]}})
    finally:
        torch.set_num_threads(threads)
    return s, out, prof, data


def test_smoke_study_folds_cover_every_image_once_and_keep_groups_together(smoke_study):
    _, out, *_ = smoke_study
    folds = pd.read_csv(out / "folds.csv")
    assert set(folds["kind"]) == {"grouped", "random"}
    for kind, f in folds.groupby("kind"):
        assert f["file"].is_unique and len(f) == 24
        assert set(f["fold"]) == {0, 1, 2}
        assert f.groupby("label")["fold"].nunique().min() >= 2  # stratified
    g = folds[folds["kind"] == "grouped"]
    assert g.groupby("group")["fold"].nunique().max() == 1  # no group split across folds
    labels_in_group = g.groupby("group")["label"].transform("nunique")
    assert (g["conflict"] == (labels_in_group > 1)).all()
    assert {"benign/benign (1).png", "malignant/malignant (8).png"} <= set(g.loc[g["conflict"], "file"])


def test_smoke_study_writes_oof_predictions_for_every_image_once_per_seed(smoke_study):
    s, out, *_ = smoke_study
    files = sorted(p.name for p in (out / "oof").glob("*.csv"))
    assert files == sorted(f"{a}-{k}-fold{f}-seed0.csv" for a in ("constant", "onecycle")
                           for k in ("grouped", "random") for f in range(3))
    oof = sd.load_predictions(out)
    assert list(oof.columns) == sd.PREDICTION_COLUMNS
    folds = pd.read_csv(out / "folds.csv")
    for (arm, kind, weights), g in oof.groupby(["arm", "kind", "weights"]):
        assert g["file"].is_unique and len(g) == 24, (arm, kind, weights)
        want = folds[folds["kind"] == kind].set_index("file")["fold"]
        assert (g.set_index("file")["fold"] == want.reindex(g["file"])).all()  # tested in its own fold
    assert np.allclose(oof[P_COLS].sum(axis=1), 1, atol=1e-4) and np.allclose(oof[H_COLS].sum(axis=1), 1, atol=1e-4)
    assert s.complete and len(s.coverage) == 2 * 2 * 2
    val = sd.load_predictions(out, "val")
    merged = val.merge(oof, on=["file", "arm", "kind", "seed", "weights"], suffixes=("", "_t"))
    assert (merged["fold"] != merged["fold_t"]).all()  # a run's validation images are never its test fold
    assert (pd.read_csv(out / "runs.csv")["n_train"] > 0).all()


def test_smoke_study_result_has_every_part_and_reads_back(smoke_study):
    s, out, *_ = smoke_study
    folds = pd.read_csv(out / "folds.csv").drop_duplicates("file")
    conflicts = set(folds.loc[folds["conflict"], "file"])
    assert s.profile == "smoke-cv" and s.weights == "last" and s.n_scored == 24 - len(conflicts)
    assert {c.file for c in s.conflicts} == conflicts
    assert {"benign/benign (1).png", "malignant/malignant (8).png"} <= conflicts
    assert all(x.n_images == s.n_scored for x in s.scores)
    assert {(x.arm, x.kind, x.rows) for x in s.scores if x.weights == "last"} == {
        (a, k, r) for a in ("constant", "onecycle") for k in ("grouped", "random") for r in ("pooled", "ensemble_tta")}
    d = s.difference("onecycle", "constant", "grouped")
    assert d.test.n == 3 and d.test.df == 2 and len(d.per_run) == 3
    assert not math.isnan(d.pooled.low)
    assert {g.arm for g in s.leakage} == {"constant", "onecycle"}
    assert len(s.weights_checks) == 4 and all(w.n_runs == 3 for w in s.weights_checks)
    assert sd.load_study(out).to_dict() == sd.from_json(sd.to_json(s)).to_dict()


def test_smoke_study_second_call_loads_the_runs_and_records_the_call(smoke_study, monkeypatch):
    s, out, prof, data = smoke_study
    before = sd.load_predictions(out)
    runs_before = pd.read_csv(out / "runs.csv")
    monkeypatch.setenv("BCDET_DATA", str(data))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    predict, predicted = sd.cv.predict_run, []

    def counting_predict(run_dir, *a, **k):
        predicted.append(Path(run_dir).name)
        return predict(run_dir, *a, **k)

    monkeypatch.setattr(sd.cv, "predict_run", counting_predict)
    try:
        again = sd.run_study(prof, arms=["constant"], kinds=["random"], seeds=[0], device="cpu", progress=False,
                             out=out, n_boot=200, jobs=1)
        assert predicted == []  # every run's predictions are on record: none is loaded and predicted again
        result = runs_dir(prof.name) / "constant-random-fold1-seed0" / "result.json"
        os.utime(result, (result.stat().st_atime, result.stat().st_mtime + 60))  # as if trained again since
        sd.run_study(prof, arms=["constant"], kinds=["random"], seeds=[0], device="cpu", progress=False,
                     out=out, n_boot=200, jobs=1)
        assert predicted == ["constant-random-fold1-seed0"]
    finally:
        torch.set_num_threads(threads)
    pd.testing.assert_frame_equal(sd.load_predictions(out), before)  # same weights, same predictions
    pd.testing.assert_frame_equal(pd.read_csv(out / "runs.csv"), runs_before)  # loaded, not retrained
    design = json.loads((out / "design.json").read_text())
    assert [c["arms"] for c in design["calls"]] == [["constant", "onecycle"], ["constant"], ["constant"]]
    assert again.arms == s.arms == ["constant", "onecycle"]
    assert sd.to_json(again).count('"arm"') == sd.to_json(s).count('"arm"')


def test_smoke_study_keeps_every_runs_test_record_and_it_matches_the_final_weights(smoke_study):
    """inflation/<run>.csv: the test fold's predicted class after every epoch (for the leakage
    ladder); its last epoch is what last.pt predicts on the same images."""
    _, out, prof, _ = smoke_study
    oof = sd.load_predictions(out)
    for (arm, kind, fold, seed), last in oof[oof.weights == "last"].groupby(["arm", "kind", "fold", "seed"]):
        path = out / "inflation" / f"{arm}-{kind}-fold{fold}-seed{seed}.csv"
        rec = pd.read_csv(path)
        assert list(rec.columns) == ["file", "y"] + [f"e{e}" for e in range(1, prof.epochs + 1)]
        proba = last[P_COLS].to_numpy()  # rounded to PROBA_DECIMALS: a 1-epoch model can tie there
        got = rec.set_index("file").loc[last["file"], f"e{prof.epochs}"].to_numpy()
        assert (proba[np.arange(len(got)), got] == proba.max(1)).all(), path.name  # the recorded class is a top one
        assert (rec.set_index("file").loc[last["file"], "y"].to_numpy() == last["y"].to_numpy()).all()
    assert len(list((out / "inflation").glob("*.csv"))) == 12 + 3  # + the ladder's 3 augmented runs


def test_only_the_runs_the_ladder_reads_keep_a_test_record_and_a_run_is_the_same_without_it(smoke_study, tmp_path,
                                                                                            monkeypatch):
    """The leakage ladder reads the test records of the first fold partition only: a run of a second partition
    skips the record (~8 % of a CPU run's time), and the improvement ladder's studies ask for none. Predicting
    changes no weight: the same run trained with the record ends with the same weights."""
    from bcdet_helpers.runkey import RunKey
    from bcdet_helpers.runs import train_run

    assert sd.cv.records_test(RunKey("constant", "grouped", 0, 0))
    assert sd.cv.records_test(RunKey("constant", "random", 1, 2))
    assert not sd.cv.records_test(RunKey("constant", "grouped", 0, 0, partition=1))
    assert not sd.cv.records_test(RunKey("constant", "grouped", 0, 0), record_test=False)
    assert sd.cv.records_test(RunKey("constant", sd.AUGMENTED, 0, 0), record_test=False)  # nothing but its record
    _, _, prof, data = smoke_study
    monkeypatch.setenv("BCDET_DATA", str(data))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "cv"
        sd.run_study(prof, arms=["constant"], kinds=["grouped"], seeds=[0], folds=[0], partitions=[0, 1],
                     device="cpu", progress=False, out=out, n_boot=50, jobs=1)
        assert sorted(p.name for p in (out / "inflation").glob("*.csv")) == ["constant-grouped-fold0-seed0.csv"]
        assert sorted(p.name for p in (out / "oof").glob("*.csv")) == ["constant-grouped-fold0-seed0-partition1.csv",
                                                                       "constant-grouped-fold0-seed0.csv"]
        again = sd.run_study(prof, arms=["constant"], kinds=["grouped"], seeds=[0], folds=[0], partitions=[0, 1],
                             device="cpu", progress=False, out=out, n_boot=50, jobs=1)  # resumed from its record
        assert again is not None and len(pd.read_csv(out / "runs.csv")) == 2
        plain = RunKey("constant", "grouped", 0, 0, partition=1).run_dir(prof.name)
        assert not (plain / "test-by-epoch.csv").exists()
        recorded = train_run(prof, "constant", fold=0, seed=0, partition=1, device="cpu", progress=False,
                             record_test=True, run_dir=tmp_path / "with-record")
        assert (Path(recorded.run_dir) / "test-by-epoch.csv").exists()
    finally:
        torch.set_num_threads(threads)
    a = torch.load(plain / "last.pt", map_location="cpu", weights_only=False)["model"]
    b = torch.load(tmp_path / "with-record" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_smoke_study_augmented_runs_train_on_copies_of_their_test_images_and_only_leave_a_record(smoke_study):
    """The ladder's "augmented" runs: the random folds, ladder_test_copies copies of each test image
    added to training; their own run folders; a test record in inflation/, never an OOF prediction."""
    from bcdet_helpers.paths import runs_dir

    _, out, prof, _ = smoke_study
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["kind"]) == {"grouped", "random"} and not list((out / "oof").glob("*augmented*"))
    for fold in range(3):
        leaky = runs_dir(prof.name) / f"constant-random-fold{fold}-seed0-testcopies{prof.ladder_test_copies}"
        config = json.loads((leaky / "config.json").read_text())
        result = json.loads((leaky / "result.json").read_text())
        plain = runs[(runs.arm == "constant") & (runs.kind == "random") & (runs.fold == fold)].iloc[0]
        assert config["test_copies"] == prof.ladder_test_copies and config["split"] == "random"
        assert result["n_train"] == plain["n_train"] + prof.ladder_test_copies * plain["n_test"]
        rec = pd.read_csv(out / "inflation" / f"constant-{sd.AUGMENTED}-fold{fold}-seed0.csv")
        plain_rec = pd.read_csv(out / "inflation" / f"constant-random-fold{fold}-seed0.csv")
        assert list(rec["file"]) == list(plain_rec["file"])  # the same test images, scored the same way


def test_smoke_study_climbs_the_leakage_ladder(smoke_study, tmp_path, capsys):
    """The ladder under smoke, through the command line, on the trained study's own files."""
    from bcdet_helpers.research.cli import main

    _, out, *_ = smoke_study
    assert main(["ladder", "--profile", "smoke-cv", "--study", str(out), "--arm", "constant",
                 "--out", str(tmp_path / "ladder")]) == 0
    table = pd.read_csv(tmp_path / "ladder" / "ladder.csv")
    assert table["rung"].tolist() == [r.name for r in sd.RUNGS]
    assert (table["gain"].iloc[2:5] >= 0).all()  # choosing on test can only climb (a leak can go either way)
    assert (table["n_images"].iloc[:4] == table["n_images"].iloc[0]).all() and (table["n_images"].iloc[4:] < 24).all()
    assert (tmp_path / "ladder" / "waterfall.png").stat().st_size > 10_000
    assert main(["ladder", "--study", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) != 0
    assert "no folds.csv" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_study_trained_without_the_notebooks_publishes_alone(smoke_study, tmp_path):
    """``bcdet publish --study-only``: a finished study (trained on a GPU machine, say) goes to
    results/<profile>-cv/ with its verdict and its runs' records, a README that names where it ran, and
    supersedes a partial snapshot; a stale or unfinished study is refused and nothing is written."""
    import os
    import shutil

    from bcdet_helpers.research.publish import publish_study

    _, out, prof, _ = smoke_study
    s = sd.load_study(out)  # as it stands now: tests before this one may have added calls to the study
    (tmp_path / "smoke-cv-partial").mkdir()
    dest = publish_study(prof.name, dest=tmp_path / "smoke-cv", study=out)
    external = ["external"] if (out / "external").exists() else []  # BUS-BRA's predictions, where it is here
    assert sorted(p.name for p in dest.iterdir()) == sorted([".bcdet-output", "README.md", "design.json", "folds.csv",
                                                             "inflation", "oof", "runs", "runs.csv", "study.json",
                                                             "val", *external])
    assert sd.load_study(dest).to_dict() == s.to_dict() and len(list((dest / "runs").iterdir())) == 12 + 3
    text = (dest / "README.md").read_text()
    assert "no notebooks ran" in text and f"on cpu (commit {s.commit})" in text and "--study-only" in text
    assert not (tmp_path / "smoke-cv-partial").exists()
    copy = shutil.copytree(out, tmp_path / "copy")
    later = (copy / "study.json").stat().st_mtime_ns + 10**9
    os.utime(copy / "runs.csv", ns=(later, later))  # a run finished after the study was evaluated
    with pytest.raises(BcdetError, match="stale: runs.csv changed"):
        publish_study(prof.name, dest=tmp_path / "x", study=copy)
    (copy / "study.json").unlink()
    with pytest.raises(BcdetError, match="has not finished"):
        publish_study(prof.name, dest=tmp_path / "x", study=copy)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob("*.publishing"))


def test_a_partial_snapshot_holds_the_records_but_no_verdict(smoke_study, tmp_path, capsys):
    """``bcdet publish --partial``: a running study's CSVs and finished runs' records, for a commit;
    no study.json, a README with the count and the restore commands."""
    from bcdet_helpers.research.publish import publish_partial

    _, out, prof, _ = smoke_study
    dest = publish_partial(prof.name, dest=tmp_path / "snap", study=out)
    external = ["external"] if (out / "external").exists() else []  # BUS-BRA's predictions, where it is here
    assert sorted(p.name for p in dest.iterdir()) == sorted([".bcdet-output", "README.md", "design.json", "folds.csv",
                                                             "inflation", "oof", "runs", "runs.csv", "val", *external])
    runs = sorted(p.name for p in (dest / "runs").iterdir())
    assert len(runs) == 12 + 3 and all(sorted(q.name for q in (dest / "runs" / r).iterdir()) ==
                                       ["config.json", "history.csv", "result.json"] for r in runs)
    assert len(list((dest / "oof").glob("*.csv"))) == len(list((out / "oof").glob("*.csv")))
    text = (dest / "README.md").read_text()
    assert "NOT a result" in text and "15 finished run folders, 12 of them in `runs.csv`" in text
    assert f"rm -rf runs/{prof.name}/constant-grouped-fold0-seed0 runs/{prof.name}/onecycle-grouped-fold0-seed0" in text
    with pytest.raises(BcdetError, match="no folds.csv"):
        publish_partial(prof.name, dest=tmp_path / "x", study=tmp_path / "nothing")
    assert not (tmp_path / "x").exists()


def test_a_run_in_a_worker_equals_the_same_run_alone(tmp_path_factory, monkeypatch):
    """issue #17: the study's workers (jobs=2, one thread each) give every run the same history,
    predictions and test record as training it alone in this process with one thread -- bit for
    bit: the seed fixes initialisation, order and augmentation, one thread the order of every sum."""
    monkeypatch.setenv("BCDET_DATA", str(make_busi(tmp_path_factory.mktemp("busi-jobs"), 6)))
    prof = dataclasses.replace(get_profile("smoke", epochs=2), name="smoke-jobs", folds=2)
    kw = dict(arms=["constant", "switching"], kinds=["grouped"], seeds=[3], device="cpu", progress=False, n_boot=50)
    outs = {}
    for jobs in (2, 1):
        runs, out = tmp_path_factory.mktemp(f"runs-{jobs}"), tmp_path_factory.mktemp(f"cv-{jobs}")
        monkeypatch.setenv("BCDET_RUNS", str(runs))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            sd.run_study(prof, out=out, jobs=jobs, **kw)
        finally:
            torch.set_num_threads(threads)
        outs[jobs] = (out, runs / prof.name)
    (w_out, w_runs), (a_out, a_runs) = outs[2], outs[1]
    pd.testing.assert_frame_equal(sd.load_predictions(w_out), sd.load_predictions(a_out))
    runs = sorted(p.name for p in a_runs.glob("*-grouped-fold*-seed3"))
    assert len(runs) == 4
    for run in runs:
        for name in ("history.csv", "test-by-epoch.csv"):
            a, w = pd.read_csv(a_runs / run / name), pd.read_csv(w_runs / run / name)
            pd.testing.assert_frame_equal(a.drop(columns="seconds", errors="ignore"),
                                          w.drop(columns="seconds", errors="ignore"))
        pd.testing.assert_frame_equal(pd.read_csv(w_out / "inflation" / f"{run}.csv"),
                                      pd.read_csv(a_runs / run / "test-by-epoch.csv"))


def test_extra_runs_add_one_arms_seeds_and_are_recorded(tmp_path_factory, monkeypatch):
    """``extra``: the leakage ladder's way to give one arm more seeds than the design."""
    monkeypatch.setenv("BCDET_DATA", str(make_busi(tmp_path_factory.mktemp("busi-extra"), 6)))
    prof = dataclasses.replace(get_profile("smoke", epochs=1), name="smoke-extra", folds=2)
    out = tmp_path_factory.mktemp("cv-extra")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = sd.run_study(prof, arms=["constant"], kinds=["grouped"], seeds=[0], device="cpu", progress=False,
                         out=out, n_boot=50, jobs=1, extra={"onecycle": {"grouped": [1]}, "decay": {"random": [0]}})
    finally:
        torch.set_num_threads(threads)
    names = sorted(p.stem for p in (out / "oof").glob("*.csv"))
    assert names == [f"{a}-grouped-fold{f}-seed{k}" for a, k in (("constant", 0), ("onecycle", 1)) for f in (0, 1)]
    assert json.loads((out / "design.json").read_text())["calls"][-1]["extra"]["onecycle"] == {"grouped": [1]}
    assert s.complete  # every (arm, kind, weights, seed) it ran covers every image once


def test_a_study_restored_without_weights_uses_its_record_and_refuses_a_stale_one(tmp_path_factory, monkeypatch):
    """A fresh machine with only the committed snapshot (run folders without checkpoints, the study's
    CSVs): the study is whole again without retraining; a changed config or a missing prediction is
    named, with the fix, instead of being used."""
    from bcdet_helpers import train
    from bcdet_helpers.paths import runs_dir
    from bcdet_helpers.runs import load_run

    monkeypatch.setenv("BCDET_DATA", str(make_busi(tmp_path_factory.mktemp("busi-restore"), 6)))
    prof = dataclasses.replace(get_profile("smoke", epochs=1), name="smoke-restore", folds=2)
    out = tmp_path_factory.mktemp("cv-restore")
    kw = dict(arms=["constant"], kinds=["grouped", "random"], seeds=[0], device="cpu", progress=False, out=out,
              n_boot=50, jobs=1, extra={"constant": {sd.AUGMENTED: [0]}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = sd.run_study(prof, **kw)
        runs_before, oof_before = pd.read_csv(out / "runs.csv"), sd.load_predictions(out)
        for pt in runs_dir(prof.name).glob("*/*.pt"):
            pt.unlink()
        monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a recorded run was retrained"))
        again = sd.run_study(prof, **kw)
        pd.testing.assert_frame_equal(pd.read_csv(out / "runs.csv"), runs_before)
        pd.testing.assert_frame_equal(sd.load_predictions(out), oof_before)
        assert [x.accuracy for x in again.scores] == [x.accuracy for x in first.scores]
        with pytest.raises(BcdetError, match="not its weights"):
            load_run(runs_dir(prof.name) / "constant-grouped-fold0-seed0")
        config = runs_dir(prof.name) / "constant-random-fold1-seed0" / "config.json"
        config.write_text(config.read_text().replace('"seed": 0', '"seed": 5'))
        with pytest.raises(BcdetError, match="constant-random-fold1-seed0.*other settings.*Delete that run folder"):
            sd.run_study(prof, **kw)
        config.write_text(config.read_text().replace('"seed": 5', '"seed": 0'))
        (out / "oof" / "constant-grouped-fold1-seed0.csv").unlink()
        with pytest.raises(BcdetError, match="lacks its oof/constant-grouped-fold1-seed0.csv"):
            sd.run_study(prof, **kw)
    finally:
        torch.set_num_threads(threads)


def test_write_folds_on_the_fixture_data_keeps_near_duplicates_together(busi_dir, tmp_path, monkeypatch):
    """No training: the fold assignment of the full smoke subset of ``busi_dir`` (real BUSI in CI)."""
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    path = sd.write_folds("smoke", ("grouped", "random"), out=tmp_path)
    folds = pd.read_csv(path)
    g = folds[folds["kind"] == "grouped"]
    assert g["file"].is_unique and g.groupby("group")["fold"].nunique().max() == 1
    assert sorted(g["fold"].unique()) == list(range(get_profile("smoke").folds))
    assert sd.write_folds("smoke", "grouped", out=tmp_path).read_text() == path.read_text()  # deterministic


def test_forest_plot_draws_every_difference_and_the_claim(study):
    from bcdet_helpers import plots

    table = study.differences_table("accuracy")
    table = table[table.kind == "grouped"]
    fig = plots.forest_plot(table, claim=study.claim, title="hand-made")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert [lab.split("\n")[0] for lab in labels] == list(table["comparison"])
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(100 * study.claim)
    texts = " ".join(t.get_text() for t in ax.texts)
    for row in table.itertuples():
        assert f"{100 * row.difference:+.1f} [{100 * row.low:+.1f}, {100 * row.high:+.1f}]" in texts
    lo, hi = ax.get_xlim()
    assert lo < 100 * table["low"].min() and hi > 100 * max(table["high"].max(), study.claim)


def test_clinical_numbers_use_a_threshold_chosen_on_validation_images(folder, study):
    """#28: balanced accuracy, and malignant sensitivity/specificity at the threshold each run chose on its
    validation images for 90 % sensitivity -- transported to its test fold, never read off it."""
    from bcdet_helpers.research.external import choose_threshold
    from bcdet_helpers.research.study.evaluation import _operating_point

    rng = np.random.default_rng(1)
    val = pd.DataFrame({"fold": np.repeat([0, 1], 50), "seed": 0, "y": rng.integers(0, 3, 100),
                        "p_malignant": rng.random(100)})
    test = pd.DataFrame({"fold": np.repeat([0, 1], 40), "seed": 0, "y": rng.integers(0, 3, 80),
                         "p_malignant": rng.random(80)})
    called = _operating_point(test, val)
    for fold in (0, 1):
        v = val[val["fold"] == fold]
        t = choose_threshold(v["y"] == 1, v["p_malignant"], sd.OPERATING_SENSITIVITY)
        assert (called[test["fold"] == fold] == (test.loc[test["fold"] == fold, "p_malignant"] >= t)).all()
    poisoned = test.assign(y=(test["y"] + 1) % 3)  # the test labels play no part in the threshold
    assert (_operating_point(poisoned, val) == called).all()
    assert _operating_point(test, val.assign(y=0)) is None  # no malignant validation image: nothing to choose on
    # the hand-written folder: its grouped folds follow the class, so a fold's validation part lacks malignant
    # images -- no operating point, said as None rather than a number; balanced accuracy is there
    s = study.score("switching", "grouped")
    assert s.malignant_sensitivity is None and s.malignant_specificity is None
    oof = _oof(folder)
    test = oof[(oof["arm"] == "switching") & (oof["kind"] == "grouped") & (oof["weights"] == "last")]
    pred = test[P_COLS].to_numpy().argmax(1)
    by_hand = np.mean([(pred[test["y"] == k] == k).mean() for k in range(3)])
    assert s.balanced_accuracy.value == pytest.approx(by_hand)
