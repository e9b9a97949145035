"""Issue #30, the aggregation: every arm of a study on BUS-BRA (bcdet_helpers.research.study.external_eval and the
modules beside it: external_bootstrap, external_result, external_report).

A study folder written by hand (tests/test_study.write_folder's BUSI side, BUS-BRA predictions drawn here
for a BUS-BRA-shaped table from fakebusbra): thresholds come from validation only, intervals resample
patients and training replicates, scanners get rows only with enough images, arms pair, the JSON round
trips, ``bcdet external`` writes its record; then the real path on a tiny smoke study."""
from __future__ import annotations

import json
import math
import shutil
import zlib

import numpy as np
import pandas as pd
import pytest
from fakebusbra import make_busbra
from test_study import _files, write_folder

from bcdet_helpers.research import stats
from bcdet_helpers.busi import CLASSES
from bcdet_helpers.research.cli import main
from bcdet_helpers.data.busbra import read_busbra
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.research.external import choose_threshold
from bcdet_helpers.research.outputs import MARKER
from bcdet_helpers.runkey import RunKey
from bcdet_helpers.research.study import external_bootstrap, external_report
from bcdet_helpers.research.study import external_eval as ee
from bcdet_helpers.research.study.external_result import DIFFERENCE_METRICS, ExternalStudy
from bcdet_helpers.research.study.external import EXTERNAL_COLUMNS

ARMS = ("constant", "switching")
SEEDS = (0, 1)
FOLDS = 3  # write_folder's
N_BOOT = 200
STRENGTH = {"constant": 1.0, "switching": 1.6}  # logit separation of malignant from benign


@pytest.fixture(scope="module")
def busbra(tmp_path_factory):
    """A BUS-BRA-shaped copy: 240 patients (~420 images, ~140 per scanner of three)."""
    return make_busbra(tmp_path_factory.mktemp("data"), n_patients=240)


@pytest.fixture(scope="module")
def table(busbra):
    """Its table, with the first 20 patients moved to a fourth scanner: too few images for a row."""
    t = read_busbra(busbra)
    t.loc[t["patient"].astype(int) <= 20, "device"] = "U-Systems"
    return t


def write_external(root, table, seed_shift=None, weak=(), same_seeds=False, flip_labels=False):
    """``root/external/<run>.csv.gz`` for every (arm, fold, seed) of write_folder's grouped runs: p(malignant)
    from the truth, a per-patient effect shared by all a patient's images and runs, and run noise;
    ``seed_shift[(arm, seed)]`` moves one seed's logits and ``weak`` (arm, seed) pairs barely separate the
    classes (seeds that disagree); ``same_seeds``: every seed
    predicts as seed 0; ``flip_labels``: the recorded truth inverted (poisoned labels)."""
    rng = np.random.default_rng(1)
    y = table["y"].to_numpy(int)
    is_mal = y == CLASSES.index("malignant")
    patient = table["patient"].astype(int).to_numpy()
    effect = rng.normal(0, 1.2, patient.max() + 1)[patient]
    (root / "external").mkdir(exist_ok=True)
    for arm in ARMS:
        for fold in range(FOLDS):
            noise_of = {s: rng.normal(0, 0.5, len(y)) for s in SEEDS}
            for seed in SEEDS:
                noise = noise_of[0 if same_seeds else seed]
                strength = STRENGTH[arm] * (0.1 if (arm, seed) in weak else 1)
                logit = strength * (2 * is_mal - 1) + effect + noise + (seed_shift or {}).get((arm, seed), 0)
                p_mal = 1 / (1 + np.exp(-logit))
                p_norm = np.where(np.abs(noise) > 1.1, 0.6, 0.05) * (1 - p_mal)  # some lesions called normal
                proba = np.c_[1 - p_mal - p_norm, p_mal, p_norm]
                flip = np.clip(proba + 0.02 * np.sign(noise)[:, None] * np.array([1, -1, 0]), 0, 1)
                flip /= flip.sum(1, keepdims=True)
                df = pd.DataFrame({"file": table["file"], "y": 1 - y if flip_labels else y, "kind": "grouped",
                                   "fold": fold, "seed": seed, "arm": arm, "epoch": 50})
                for k, c in enumerate(CLASSES):
                    df[f"p_{c}"] = proba[:, k].round(5)
                for k, c in enumerate(CLASSES):
                    df[f"p_{c}_hflip"] = flip[:, k].round(5)
                df[EXTERNAL_COLUMNS].to_csv(root / "external" / f"{arm}-grouped-fold{fold}-seed{seed}.csv.gz",
                                            index=False, compression="gzip")
    return root


def write_val(root):
    """Replace write_folder's validation CSVs (10 images, a third of the runs without a malignant one) by 40
    images of each class, drawn per run, with a continuous p(malignant): what thresholds are chosen on."""
    files, y, group = _files()
    for path in sorted((root / "val").glob("*.csv")):
        old = pd.read_csv(path)
        key = RunKey.parse(path.stem)
        rng = np.random.default_rng(zlib.crc32(path.stem.encode()))
        idx = np.sort(rng.choice(len(files), 40, replace=False))  # (write_folder's grouped folds are its classes)
        frames = []
        for weights in ("last", "best"):
            p_mal = np.clip(0.3 + 0.4 * (y[idx] == 1) + rng.normal(0, 0.15, len(idx)), 0.01, 0.97)
            proba = np.c_[(1 - p_mal) * 0.6, p_mal, (1 - p_mal) * 0.4]
            flip = np.c_[(1 - p_mal) * 0.55, p_mal, (1 - p_mal) * 0.45]
            df = pd.DataFrame({"file": [files[i] for i in idx], "label": [CLASSES[k] for k in y[idx]], "y": y[idx],
                               "group": group[idx], "kind": key.kind, "fold": key.fold, "seed": key.seed,
                               "arm": key.arm, "weights": weights, "epoch": 50, "part": "val"})
            df[[f"p_{c}" for c in CLASSES]] = proba.round(5)
            df[[f"p_{c}_hflip" for c in CLASSES]] = (0.5 * (proba + flip) + rng.normal(0, 0.02, proba.shape)).round(5)
            df["pred"] = [CLASSES[k] for k in proba.argmax(1)]
            frames.append(df)
        pd.concat(frames)[list(old.columns)].to_csv(path, index=False)


def make_study(root, table, **kw):
    write_folder(root, arms=ARMS, kinds=("grouped",), seeds=SEEDS)
    write_val(root)
    (root / "design.json").write_text(json.dumps({"profile": {"name": "smoke"}, "arms": list(ARMS)}))
    return write_external(root, table, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, table):
    return make_study(tmp_path_factory.mktemp("study"), table)


@pytest.fixture(scope="module")
def result(folder, table):
    return ee.evaluate_external(folder, table, n_boot=N_BOOT)


def _width(iv):
    return iv.high - iv.low


# ------------------------------------------------------------------------------------ thresholds
def test_thresholds_are_chosen_on_validation_only(folder, table, result, tmp_path):
    """Each run's threshold is choose_threshold on its own val/ rows (final weights); inverting BUS-BRA's
    labels leaves every threshold as it was and moves the scores."""
    val = pd.read_csv(folder / "val" / "switching-grouped-fold1-seed0.csv")
    val = val[val["weights"] == "last"]
    want = choose_threshold(val["y"] == 1, val["p_malignant"], 0.9)
    got = result.thresholds_table().set_index(["arm", "fold", "seed"]).loc[("switching", 1, 0)]
    assert got["threshold"] == pytest.approx(want)
    assert got["threshold_tta"] == pytest.approx(choose_threshold(val["y"] == 1, (val["p_malignant"]
                                                                                  + val["p_malignant_hflip"]) / 2, 0.9))
    assert len(result.thresholds) == len(ARMS) * FOLDS * len(SEEDS)

    poisoned = write_external(shutil.copytree(folder, tmp_path / "poisoned"), table, flip_labels=True)
    bad = ee.evaluate_external(poisoned, table, n_boot=N_BOOT)
    pd.testing.assert_frame_equal(bad.thresholds_table(), result.thresholds_table())
    good, worse = result.score("switching"), bad.score("switching")
    assert worse.auc.value == pytest.approx(1 - good.auc.value)  # the ranking is scored against other labels
    assert worse.sensitivity.value != pytest.approx(good.sensitivity.value)
    assert worse.threshold == good.threshold


# ------------------------------------------------------------------------------------ intervals
def test_intervals_resample_patients_and_training_replicates(folder, table, result):
    """The pooled interval is the two-way bootstrap: replicates (partition, seed) and patients drawn with
    stats.two_way_counts, each row counted w[replicate] * c[patient] -- a patient's images move together."""
    from sklearn.metrics import roc_auc_score

    ext = ee.load_external(folder)
    ext = ext[ext["arm"] == "constant"]
    th = result.thresholds_table().set_index(["arm", "partition", "fold", "seed"])["threshold"]
    t = th.loc[list(zip(ext["arm"], ext["partition"], ext["fold"], ext["seed"]))].to_numpy()
    patient = ext["file"].map(table.set_index("file")["patient"]).to_numpy()
    units = (ext["partition"].astype(str) + "/" + ext["seed"].astype(str)).to_numpy()
    (u_codes, u_labels), (g_codes, g_labels) = (np.unique(units, return_inverse=True)[::-1],
                                                np.unique(patient, return_inverse=True)[::-1])
    assert len(u_labels) == len(SEEDS) and len(g_labels) == table["patient"].nunique()
    w, c = stats.two_way_counts(len(u_labels), len(g_labels), N_BOOT, 0)
    weights = w[:, u_codes] * c[:, g_codes]
    y, p = ext["y"].to_numpy() == 1, ext["p_malignant"].to_numpy()
    sens = (weights * (y & (p >= t))).sum(1) / (weights * y).sum(1)
    got = result.score("constant").sensitivity
    assert got.value == pytest.approx(((y & (p >= t)).sum()) / y.sum())
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(sens, [0.025, 0.975])))
    reps_auc = [roc_auc_score(y, p, sample_weight=weights[b]) for b in range(5)]
    auc = result.score("constant").auc
    assert auc.value == pytest.approx(roc_auc_score(y, p))
    # the first resamples' AUCs, by sklearn, are among what the interval was built from: rebuild it
    full = [roc_auc_score(y, p, sample_weight=weights[b]) for b in range(N_BOOT)]
    assert (auc.low, auc.high) == pytest.approx(tuple(np.quantile(full, [0.025, 0.975])))
    assert reps_auc == pytest.approx(full[:5])
    # the images of one patient always share a weight
    two = pd.Series(patient).duplicated(keep=False).to_numpy()
    first = pd.DataFrame({"p": patient[two], "w": weights[0, two], "u": u_codes[two]})
    assert first.groupby(["p", "u"])["w"].nunique().eq(1).all()


def test_patient_clusters_widen_the_interval_over_images(folder, table, result):
    """Treating every image as its own patient (an image-level bootstrap) narrows the AUC interval: a
    patient's images share an effect here, as real views of one lesion do."""
    per_image = table.assign(patient=table["id"])
    narrow = ee.evaluate_external(folder, per_image, n_boot=N_BOOT)
    assert result.n_patients < narrow.n_patients == result.n_images
    assert _width(narrow.score("constant").auc) < _width(result.score("constant").auc)


def test_intervals_widen_when_seeds_disagree(table, tmp_path):
    agree = ee.evaluate_external(make_study(tmp_path / "agree", table, same_seeds=True), table, n_boot=N_BOOT)
    shift, weak = {("constant", 1): -1.5}, {("constant", 1)}
    disagree = ee.evaluate_external(make_study(tmp_path / "disagree", table, seed_shift=shift, weak=weak), table,
                                    n_boot=N_BOOT)
    wide, narrow = disagree.score("constant"), agree.score("constant")
    for metric in ("auc", "sensitivity"):
        assert _width(getattr(wide, metric)) > 1.5 * _width(getattr(narrow, metric))
    ensemble = [r.score("constant", rows="ensemble_tta").auc for r in (disagree, agree)]
    assert _width(ensemble[0]) > _width(ensemble[1])  # the ensemble of the drawn seeds moves too


def test_resampled_aucs_match_sklearn_with_ties():
    """Both AUC forms (fixed scores, many weightings; a score per resample) are roc_auc_score with weights."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.4
    s = rng.integers(0, 12, (4, 300)) / 11  # many ties
    w = rng.integers(0, 3, (4, 300))
    got = external_bootstrap._auc_rows(y, s, w)
    assert got == pytest.approx([roc_auc_score(y, s[b], sample_weight=w[b]) for b in range(4)])
    u, g = rng.integers(0, 3, 300), rng.integers(0, 50, 300)
    wt, ct = rng.integers(0, 3, (3, 4)).astype(float), rng.integers(0, 3, (50, 4)).astype(float)
    fixed = external_bootstrap._PairedAUC(y, s[0], u, g)(wt, ct)
    assert fixed == pytest.approx([roc_auc_score(y, s[0], sample_weight=wt[u, b] * ct[g, b]) for b in range(4)])


# ------------------------------------------------------------------------------------ rows
def test_per_scanner_rows_only_with_enough_images(folder, table, result):
    sizes = table.drop_duplicates("file")["device"].value_counts()
    assert result.devices == {d: int(n) for d, n in sizes.items()}
    big = {d for d, n in sizes.items() if n >= 100}
    assert "U-Systems" in result.devices_too_small and "U-Systems" not in big and len(big) >= 2
    for rows in ("pooled", "ensemble_tta"):
        assert {s.device for s in result.scores if s.arm == "constant" and s.rows == rows} == big | {"all"}
    s = result.score("constant", device=sorted(big)[0])
    assert s.n_images == sizes[sorted(big)[0]] and s.n_runs == FOLDS * len(SEEDS)
    none = ee.evaluate_external(folder, table, n_boot=20, min_device_images=10**6)
    assert {s.device for s in none.scores} == {"all"} and set(none.devices_too_small) == set(sizes.index)


def test_ensemble_is_the_mean_of_every_run_with_flip(folder, result):
    ext = ee.load_external(folder)
    ext = ext[ext["arm"] == "switching"]
    ext["tta"] = (ext["p_malignant"] + ext["p_malignant_hflip"]) / 2
    p = ext.groupby("file")["tta"].mean()
    y = ext.groupby("file")["y"].first() == 1
    from sklearn.metrics import roc_auc_score

    ens = result.score("switching", rows="ensemble_tta")
    assert ens.auc.value == pytest.approx(roc_auc_score(y, p))
    t = result.thresholds_table()
    t_ens = t.loc[t["arm"] == "switching", "threshold_tta"].mean()
    assert ens.threshold == pytest.approx(t_ens)
    assert ens.sensitivity.value == pytest.approx(float((p[y] >= t_ens).mean()))
    assert ens.n_images == result.n_images and math.isfinite(ens.auc.low) and ens.auc.low < ens.auc.value < ens.auc.high


def test_busi_out_of_fold_numbers_of_the_same_runs(folder, result):
    from sklearn.metrics import roc_auc_score

    oof = pd.concat([pd.read_csv(f) for f in sorted((folder / "oof").glob("switching-*.csv"))])
    oof = oof[(oof["weights"] == "last") & ~oof["file"].isin(["normal/normal (59).png", "malignant/malignant (58).png"])]
    b = result.busi_score("switching")
    assert b.auc.value == pytest.approx(roc_auc_score(oof["y"] == 1, oof["p_malignant"]))
    assert b.n_runs == FOLDS * len(SEEDS) and b.n_images == 58
    row = result.table().query("arm == 'switching' and rows == 'pooled' and device == 'all'").iloc[0]
    assert row["busi_auc"] == b.auc.value and row["auc"] == result.score("switching").auc.value


# ------------------------------------------------------------------------------------ pairing
def test_paired_differences_cancel_what_arms_share(folder, table, result):
    same = ee.evaluate_external(folder, table, n_boot=N_BOOT, comparisons=[("constant", "constant", "itself")])
    for metric in DIFFERENCE_METRICS:
        d = same.difference("constant", "constant", metric=metric)
        assert (d.difference.value, d.difference.low, d.difference.high) == (0, 0, 0)
    d = result.difference("switching", "constant", metric="auc")
    assert d.a_value == result.score("switching").auc.value and d.b_value == result.score("constant").auc.value
    assert d.difference.value == pytest.approx(d.a_value - d.b_value) and d.n_runs == FOLDS * len(SEEDS)
    assert d.difference.low > 0  # switching separates better, and the pairing sees it
    # paired: narrower than the two arms' own intervals would suggest
    assert _width(d.difference) < _width(result.score("switching").auc) + _width(result.score("constant").auc)


# ------------------------------------------------------------------------------------ JSON
def test_json_round_trip_is_strict_and_typed(result, tmp_path):
    text = result.to_json()
    json.loads(text)  # strict: NaN written as null
    again = ExternalStudy.from_dict(json.loads(text))
    assert again.to_dict() == result.to_dict()
    assert isinstance(again.scores[0].auc, type(result.scores[0].auc))
    result.save(tmp_path / "external.json")
    assert ExternalStudy.load(tmp_path).to_dict() == result.to_dict()
    broken = json.loads(text)
    del broken["scores"][0]["auc"]
    with pytest.raises(BcdetError, match="external.json"):
        ExternalStudy.from_dict(broken)
    with pytest.raises(BcdetError, match="Not a bcdet external result"):
        ExternalStudy.from_dict({"schema": "bcdet.study"})
    table = result.table()
    assert len(table) == len(result.scores) and {"auc_low", "busi_auc", "ece_high"} <= set(table.columns)


# ------------------------------------------------------------------------------------ the CLI
def test_bcdet_external_writes_its_record(folder, busbra, tmp_path, monkeypatch, capsys):
    from bcdet_helpers import paths

    monkeypatch.setenv("BCDET_BUSBRA", str(busbra))
    out = tmp_path / "out"
    assert main(["external", "--profile", "smoke", "--study", str(folder), "--out", str(out)]) == 0
    for name in external_report.EXTERNAL_FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / MARKER).exists()
    readme = (out / "README.md").read_text()
    assert f"bcdet external --profile smoke --study {folder} --out {out}" in readme and "doi:10.1002/mp.16812" in readme
    saved = ExternalStudy.load(out)
    assert saved.command.startswith("bcdet external") and len(pd.read_csv(out / "table.csv")) == len(saved.scores)
    assert "BUS-BRA AUC" in capsys.readouterr().out
    assert main(["external", "--profile", "smoke", "--study", str(folder), "--out", str(out)]) == 0  # ours: rewritten

    monkeypatch.setattr(paths, "project_root", lambda: tmp_path / "project")
    assert main(["external", "--profile", "smoke", "--study", str(folder), "--record"]) == 0
    assert (tmp_path / "project" / "results" / "smoke-external" / "external.json").exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["external", "--profile", "smoke", "--study", str(folder), "--out", str(foreign)]) == 2
    assert "Refusing" in capsys.readouterr().err and not (foreign / "external.json").exists()
    assert main(["external", "--profile", "laptop", "--study", str(folder), "--out", str(tmp_path / "x")]) == 2
    assert "not 'laptop'" in capsys.readouterr().err


def test_a_study_without_external_predictions_gets_one_line_saying_how(folder, busbra, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCDET_BUSBRA", str(busbra))
    bare = shutil.copytree(folder, tmp_path / "bare")
    shutil.rmtree(bare / "external")
    assert main(["external", "--profile", "smoke", "--study", str(bare), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "BCDET_BUSBRA" in err and "bcdet study" in err and "external" in err
    assert not (tmp_path / "o" / "external.json").exists()


# ------------------------------------------------------------------------------------ end to end
def test_a_smoke_study_scores_every_arm_on_busbra(busi_dir, tmp_path, monkeypatch):
    """run_study with BUS-BRA beside BUSI, then evaluate_external: every run's thresholds, both arms'
    scores and their paired difference, from the files the study wrote."""
    from bcdet_helpers.research import study as sd

    root = make_busbra(tmp_path / "data", n_patients=6)
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_BUSBRA", str(root))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    design = sd.study_design("smoke", arms=["constant", "switching"], kinds=["grouped"], seeds=[0], folds=[0, 1],
                             partitions=[0])
    out = tmp_path / "cv"
    sd.run_study(design, out=out, jobs=1, progress=False, n_boot=20)
    res = ee.evaluate_external(out, n_boot=30)
    n = len(pd.read_csv(root / "bus_data.csv"))
    assert res.profile == "smoke" and res.n_images == n and res.arms == ["constant", "switching"]
    assert len(res.thresholds) == 4 and {(t.arm, t.fold) for t in res.thresholds} == {
        (a, f) for a in ("constant", "switching") for f in (0, 1)}
    for arm in ("constant", "switching"):
        s = res.score(arm)
        assert s.n_runs == 2 and s.n_units == 1 and s.n_images == n and 0 <= s.auc.value <= 1
        assert res.score(arm, rows="ensemble_tta").n_images == n
        assert res.busi_score(arm).n_runs == 2
    assert res.difference("switching", "constant").n_runs == 2
    assert ExternalStudy.from_dict(json.loads(res.to_json())).to_dict() == res.to_dict()
