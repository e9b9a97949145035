"""Issue #31, the improvement ladder: its run-shaping options (class-imbalance losses, ultrasound augmentation,
any input size, weight averaging), its design (the verdict's folds and seeds, run folders of its own, choices on
validation only), its scoring (paired, with training variance) and ``bcdet improve`` -- on generated data under
the ``smoke`` profile: every path, in seconds."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fakebusbra import make_busbra
from fakebusi import make_busi

from bcdet_helpers import losses
from bcdet_helpers.busi import CLASSES
from bcdet_helpers.research.cli import main
from bcdet_helpers.data.augment import AUGMENT, augment_batch, intensity_jitter
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.profiles import (DEFAULTS, RUN_FIELDS, RUN_FIELDS_BEFORE, get_profile, improve_candidates,
                                    recorded_run_fields)
from bcdet_helpers.research.study import improve as im
from bcdet_helpers.research.study import improve_runs as imr
from bcdet_helpers.research.study import improve_score as isc
from bcdet_helpers.research.study.design import study_design

NEW_FIELDS = ("augment_gain_jitter", "augment_contrast_jitter", "augment_speckle_std", "loss_weighting",
              "logit_adjust_tau", "swa_epochs")
P_COLS = [f"p_{c}" for c in CLASSES]
# a new option a profile took on since: `class` ends each run with the mean of its last 6 epochs' weights (#29)
ADOPTED = {("class", "swa_epochs"): 6}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread is faster on a shared 2-core machine (see test_study.smoke_study)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ the table's new fields
def test_the_new_options_are_run_fields_off_by_default_and_older_runs_read_as_before():
    for f in NEW_FIELDS:
        assert f in RUN_FIELDS, f
        assert RUN_FIELDS_BEFORE[f] == getattr(DEFAULTS, f), f  # what every recorded run did
        for name in ("paper", "laptop", "class", "smoke"):
            expected = ADOPTED.get((name, f), RUN_FIELDS_BEFORE[f])
            assert getattr(get_profile(name), f) == expected, (name, f)
    old = recorded_run_fields({})  # a config.json written before the fields existed
    assert {f: old[f] for f in NEW_FIELDS} == {f: json.loads(json.dumps(RUN_FIELDS_BEFORE[f])) for f in NEW_FIELDS}


RECORDED = sorted(Path(__file__).resolve().parents[1].glob("results/*/runs/*/config.json"))


@pytest.mark.skipif(not RECORDED, reason="no recorded runs under results/")
def test_every_recorded_run_reads_as_trained_without_the_new_options():
    """Every committed run (results/<profile>/runs, results/<profile>-cv/runs) predates the options, or (`class`,
    re-recorded for #29) was trained with its profile's: read back, its config has today's profile values for them,
    so today's profile still finds it the same run on these fields (tests/test_recorded_results.py checks every
    other run field)."""
    for path in RECORDED:
        cfg = json.loads(path.read_text())
        fields = recorded_run_fields(cfg["profile"])
        prof = get_profile(cfg["profile"]["name"])
        for f in NEW_FIELDS:
            assert fields[f] == json.loads(json.dumps(getattr(prof, f))), (path, f)


def test_the_ladders_numbers_live_in_the_profile_table_and_scale_with_the_profile():
    laptop, smoke = get_profile("laptop"), get_profile("smoke")
    assert set(improve_candidates("resolution", laptop)) == {"96px", "128px"}
    assert [c["image_size"] for c in improve_candidates("resolution", laptop).values()] == [96, 128]
    assert [c["image_size"] for c in improve_candidates("resolution", smoke).values()] == [48, 64]
    longer = improve_candidates("longer", laptop)
    assert longer["swa"] == {"swa_epochs": 10} and longer["x2_swa"] == {"epochs": 100, "swa_epochs": 20}
    losses_tried = {c["loss_weighting"] for c in improve_candidates("imbalance", laptop).values()}
    assert losses_tried == {"balanced", "logit_adjust"}
    assert improve_candidates("baseline", laptop) == {} == improve_candidates("ensemble", laptop)


# ------------------------------------------------------------------------------------------ losses
def test_class_weighting_changes_the_loss_on_an_imbalanced_batch():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 3, generator=gen)
    y = torch.tensor([0] * 30 + [1] * 7 + [2] * 3)  # 75 / 17.5 / 7.5 %
    counts = losses.class_counts(y, 3)
    assert counts.tolist() == [30, 7, 3]
    assert torch.allclose(losses.class_weights(counts), torch.tensor([40 / 90, 40 / 21, 40 / 9]))
    plain = losses.training_loss("none", counts)(logits, y)
    weighted = losses.training_loss("balanced", counts)(logits, y)
    assert torch.isclose(plain, F.cross_entropy(logits, y))
    assert not torch.isclose(weighted, plain, rtol=1e-3)
    per = F.cross_entropy(logits, y, reduction="none")
    w = losses.class_weights(counts)[y]
    assert torch.isclose(weighted, (w * per).sum() / w.sum())  # each class counts as much as the others
    balanced_y = torch.tensor([0, 1, 2] * 10)
    same = losses.training_loss("balanced", losses.class_counts(balanced_y, 3))(logits[:30], balanced_y)
    assert torch.isclose(same, F.cross_entropy(logits[:30], balanced_y))  # balanced data: weights 1, no change
    with pytest.raises(ValueError, match="loss_weighting must be one of"):
        losses.training_loss("focal", counts)


def _fit_bias(kind: str, y: torch.Tensor, steps: int = 600) -> torch.Tensor:
    """A classifier with no input: three learnable logits, trained on labels ``y`` with ``kind``'s loss."""
    bias = torch.zeros(3, requires_grad=True)
    loss_fn = losses.training_loss(kind, losses.class_counts(y, 3))
    opt = torch.optim.SGD([bias], lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(bias.expand(len(y), 3), y).backward()
        opt.step()
    return torch.softmax(bias.detach(), 0)


def test_logit_adjustment_takes_the_training_prior_out_of_the_predictions():
    """Menon et al.: trained with logits + log(prior), the plain logits predict as if the classes were balanced.
    The model with nothing to go on but the prior shows it exactly: plain cross-entropy learns the prior (and
    calls everything benign), the adjusted loss learns a uniform prediction."""
    y = torch.tensor([0] * 60 + [1] * 25 + [2] * 15)
    prior = torch.tensor([0.60, 0.25, 0.15])
    plain, adjusted = _fit_bias("none", y), _fit_bias("logit_adjust", y)
    assert torch.allclose(plain, prior, atol=0.01)
    assert torch.allclose(adjusted, torch.full((3,), 1 / 3), atol=0.01)
    counts = losses.class_counts(y, 3)
    logits = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    assert torch.isclose(losses.training_loss("logit_adjust", counts, logit_adjust_tau=0.5)(logits, y),
                         F.cross_entropy(logits + 0.5 * torch.log(prior), y))


# ------------------------------------------------------------------------------------ augmentation
def test_the_ultrasound_augmentation_at_zero_changes_nothing_and_above_zero_changes_the_images():
    x = torch.rand(6, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    before = {k: v for k, v in AUGMENT.items() if k not in ("gain_jitter", "contrast_jitter", "speckle_std")}
    assert AUGMENT["gain_jitter"] == AUGMENT["contrast_jitter"] == AUGMENT["speckle_std"] == 0
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, g1, AUGMENT), augment_batch(x, g2, before))  # bit for bit the old draw
    assert torch.equal(g1.get_state(), g2.get_state())  # and no random number drawn: later batches unchanged too
    plain = augment_batch(x, torch.Generator().manual_seed(0), AUGMENT)
    for key, value in (("gain_jitter", 0.3), ("contrast_jitter", 0.3), ("speckle_std", 0.25)):
        out = augment_batch(x, torch.Generator().manual_seed(0), {**AUGMENT, key: value})
        assert not torch.allclose(out, plain, atol=1e-3), key
        assert out.min() >= 0 and out.max() <= 1, key  # a display's range
    gain = intensity_jitter(x, torch.Generator().manual_seed(0), {**AUGMENT, "gain_jitter": 0.3})
    ratio = (gain / x.clamp(min=1e-6)).flatten(1)
    unclipped = x.flatten(1) * 1.3 < 1
    assert all(float(r[m].std()) < 1e-4 for r, m in zip(ratio, unclipped))  # one factor per image
    factors = torch.stack([r[m].mean() for r, m in zip(ratio, unclipped)])
    assert ((factors >= 1 / 1.3 - 1e-4) & (factors <= 1.3 + 1e-4)).all() and factors.std() > 0
    raw = (255 * x).round()  # the leakage ladder's copies augment raw pixel values: clipped at 255, not 1
    assert float(intensity_jitter(raw, torch.Generator().manual_seed(0), {**AUGMENT, "gain_jitter": 0.3}).max()) > 200


# ------------------------------------------------------------------------ any size, weight averaging
def _data(busi_dir, monkeypatch, **overrides):
    from bcdet_helpers.data import load_split_data

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    prof = dataclasses.replace(get_profile("smoke", epochs=2), **overrides)
    return prof, load_split_data(prof, "grouped", 0, fold=0)


def _fit(prof, data, **kw):
    from bcdet_helpers.model import build_model
    from bcdet_helpers.profiles import schedule
    from bcdet_helpers.train import fit

    torch.manual_seed(0)
    model = build_model(prof)
    res = fit(model, data, schedule("constant", prof.epochs, prof), batch_size=prof.batch_size, seed=0, device="cpu",
              augment=prof.augmentation, progress=False, loss_weighting=prof.loss_weighting,
              logit_adjust_tau=prof.logit_adjust_tau, swa_epochs=prof.swa_epochs, **kw)
    return model, res


def test_96_px_trains_through_the_model_with_every_new_option(busi_dir, monkeypatch):
    prof, data = _data(busi_dir, monkeypatch, image_size=96, loss_weighting="balanced", swa_epochs=1,
                       augment_gain_jitter=0.3, augment_contrast_jitter=0.3, augment_speckle_std=0.25)
    assert data.images.shape[-2:] == (96, 96)
    model, res = _fit(prof, data)
    assert len(res.history) == 2 and np.isfinite(res.history["train_loss"]).all()
    assert res.averaged is not None and set(res.averaged) == {"val_loss", "val_acc", "val_f1"}
    with torch.no_grad():
        model.eval()
        assert model(torch.zeros(2, 1, 128, 128)).shape == (2, len(CLASSES))  # adaptive pooling: any size


def test_validation_loss_stays_plain_cross_entropy_whatever_the_training_loss(busi_dir, monkeypatch):
    """Trained with the logit-adjusted loss, the history's val_loss is still plain cross-entropy of the plain
    logits (comparable across rungs) -- not the adjusted loss of the same weights."""
    from bcdet_helpers.batches import Batches

    prof, data = _data(busi_dir, monkeypatch, epochs=1, loss_weighting="logit_adjust")
    model, res = _fit(prof, data)
    batches = Batches(data, prof.batch_size, 0, torch.device("cpu"), False)
    xv, yv = next(batches.val())
    model.eval()
    with torch.no_grad():
        logits = model(xv)
    adjusted = losses.training_loss("logit_adjust", losses.class_counts(batches.y, 3))
    assert res.history["val_loss"].iloc[0] == pytest.approx(float(F.cross_entropy(logits, yv)), rel=1e-4)
    assert res.history["val_loss"].iloc[0] != pytest.approx(float(adjusted(logits, yv)), rel=1e-3)


def test_weight_averaging_resumes_to_the_weights_of_an_uninterrupted_run(busi_dir, monkeypatch, tmp_path):
    prof, data = _data(busi_dir, monkeypatch, epochs=3, swa_epochs=2)
    whole, res = _fit(prof, data, run_dir=tmp_path / "whole")
    _, first = _fit(prof, data, run_dir=tmp_path / "pieces", stop_after=2)
    assert first.interrupted and first.averaged is None  # nothing averaged into the model before the end
    pieces, res2 = _fit(prof, data, run_dir=tmp_path / "pieces", resume=True)
    assert res2.averaged == pytest.approx(res.averaged)
    for a, b in zip(whole.state_dict().values(), pieces.state_dict().values()):
        assert torch.equal(a, b)
    last_epoch, plain = _fit(dataclasses.replace(prof, swa_epochs=0), data)  # the same run without averaging
    assert plain.averaged is None  # averaging changes no epoch's training, only the weights the run ends with
    assert plain.history.drop(columns="seconds").equals(res.history.drop(columns="seconds"))
    # the model ends with the mean of the last two epochs' weights, not the last epoch's
    assert not torch.equal(whole.state_dict()["head.3.weight"], last_epoch.state_dict()["head.3.weight"])


def test_a_loaded_run_keeps_the_numbers_of_the_weights_it_ended_with(busi_dir, monkeypatch, tmp_path):
    """A run that averaged ends with the averaged weights; loaded again (notebook 04 reloads finished runs), its
    ``averaged`` numbers are still there -- the class profile's table shows them (#29)."""
    from bcdet_helpers.runs import load_run, train_run

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    prof = dataclasses.replace(get_profile("smoke", epochs=2), swa_epochs=1)
    res = train_run(prof, "constant", run_dir=tmp_path / "averaged", progress=False)
    assert res.averaged is not None and load_run(tmp_path / "averaged").averaged == res.averaged
    plain = train_run(get_profile("smoke", epochs=2), "constant", run_dir=tmp_path / "plain", progress=False)
    assert plain.averaged is None and load_run(tmp_path / "plain").averaged is None


# ----------------------------------------------------------------------------------------- the design
def test_every_rung_trains_the_verdicts_grouped_runs_in_folders_of_its_own():
    laptop = get_profile("laptop")
    arm, _, choices = im.plan_ladder(laptop, arm="onecycle")
    verdict = [k for k in study_design(laptop).runs() if k.arm == arm and k.kind == "grouped"]
    assert len(verdict) == 5 * 3 * 2  # folds x seeds x partitions
    verdict_dirs = {k.run_dir("laptop") for k in verdict}
    seen = set()
    for c in choices:
        for step in c.steps:
            assert sorted(step.keys) == sorted(verdict), (c.rung, step.candidate)  # same folds, seeds, partitions
            for f in im.SHARED_FIELDS:
                assert getattr(step.profile, f) == getattr(laptop, f), (c.rung, f)
            dirs = set(step.run_dirs())
            if c.rung == "baseline":
                assert dirs == verdict_dirs  # the verdict's own runs, reused
            else:
                assert not dirs & verdict_dirs and step.profile.name.startswith("laptop-improve-")
                assert all(d.parent.name == step.profile.name for d in dirs)
            assert not dirs & seen  # no two candidates share a run folder
            seen |= dirs
    assert [c.rung for c in choices] == list(im.RUNG_NAMES)
    assert len(seen) == 30 * (1 + 2 + 2 + 1 + 2)


def test_a_rung_screens_its_candidates_then_trains_only_the_chosen_one_in_full(tmp_path, monkeypatch):
    """A rung of several candidates chooses on each one's screening runs (the first seed of the first fold
    partition, every fold); only the chosen one trains the rest, and the next rung builds on it only when its
    validation score over all its runs beats the rung below's."""
    laptop = get_profile("laptop")
    trained = {}

    def train(step, keys):
        trained.setdefault(step.candidate, []).extend(keys)
        (step.folder / "val").mkdir(parents=True, exist_ok=True)
        for k in keys:
            (step.folder / "val" / f"{k.name}.csv").write_text("")

    # screening (5 runs) prefers logit_adjust and 96px; over all 30 runs logit_adjust beats the baseline and 96px
    # does not beat logit_adjust, so the rungs above stack on logit_adjust alone
    screening = {"balanced": 0.61, "logit_adjust": 0.63, "96px": 0.66, "128px": 0.62, "swa": 0.60, "x2_swa": 0.64}
    full = {"baseline": 0.60, "logit_adjust": 0.62, "96px": 0.615, "ultrasound": 0.65, "x2_swa": 0.66}
    monkeypatch.setattr(im, "validation_score", lambda folder, keys, partial=False: (
        screening if len(keys) == 5 else full)[Path(folder).name.split("-")[-1]])
    _, _, choices = im.plan_ladder(laptop, arm="onecycle", work=tmp_path, train=train)
    verdict = sorted(k for k in study_design(laptop).runs() if k.arm == "onecycle" and k.kind == "grouped")
    screen = [k for k in verdict if k.seed == 0 and k.partition == 0]
    assert len(screen) == 5 and len(verdict) == 30
    by = {c.rung: c for c in choices}
    assert [by[r].chosen for r in ("imbalance", "resolution", "longer")] == ["logit_adjust", "96px", "x2_swa"]
    for loser in ("balanced", "128px", "swa"):
        assert sorted(trained[loser]) == screen  # turned away after its screening runs
    for name in ("logit_adjust", "96px", "x2_swa"):
        assert sorted(trained[name][:5]) == screen and sorted(set(trained[name])) == verdict  # screened, then the rest
    assert all(sorted(trained[n]) == verdict for n in ("verdict", "ultrasound"))  # one candidate: no screening
    assert sum(map(len, (set(v) for v in trained.values()))) == 30 * 5 + 5 * 3  # not 30 x 8 candidates
    assert by["imbalance"].adopted and by["imbalance"].value == 0.62
    assert not by["resolution"].adopted and by["resolution"].value == 0.615  # 0.66 on screening, 0.615 on all
    assert by["augment"].below == "imbalance" and by["augment"].step().profile.image_size == 64
    assert "screened on 5 of its 30 runs each" in by["resolution"].how and all(c.decided for c in choices)
    # nothing trained yet: --list shows the screening runs, and says the rest waits on the choice
    lines = imr.list_runs(im.plan_ladder(laptop, arm="onecycle", work=tmp_path / "fresh")[2])
    assert sum(line.split("\t")[1:3] == ["imbalance", "balanced"] for line in lines if line[0].isdigit()) == 5
    assert "#\timbalance\tthen the candidate validation keeps trains its other 25 runs" in lines


def test_a_rung_may_not_change_what_images_a_run_sees():
    with pytest.raises(BcdetError, match="may not change fold_seed"):
        im.rung_profile(get_profile("laptop"), {"fold_seed": 3}, ["x"])


@pytest.mark.parametrize("rungs, message", [
    (["bogus"], "Unknown rung(s) bogus"),
    (["imbalance", "imbalance"], "names a rung twice"),
    (["ensemble", "imbalance"], "ensemble must be the last rung"),
])
def test_bad_rungs_are_refused_in_one_line(rungs, message):
    with pytest.raises(BcdetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        im.check_rungs(rungs)
    assert im.check_rungs(["resolution", "ensemble"]) == ["baseline", "resolution", "ensemble"]


# ------------------------------------------------------------------------------- the ladder, trained
@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """The whole ladder under smoke (1 epoch, 3 folds, one seed) on a mini-BUSI and a mini-BUS-BRA."""
    from bcdet_helpers.research.study.improve_report import write_improvement

    root = tmp_path_factory.mktemp("improve")
    data, busbra = make_busi(root / "busi", 8), make_busbra(root / "bb", n_patients=6)
    prof = dataclasses.replace(get_profile("smoke", epochs=1), folds=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BCDET_DATA", str(data))
            mp.setenv("BCDET_BUSBRA", str(busbra))
            mp.setenv("BCDET_RUNS", str(root / "runs"))
            table = write_improvement(prof, jobs=1, progress=False, n_boot=60, command="bcdet improve --profile smoke")
    finally:
        torch.set_num_threads(threads)
    return table, root / "runs" / "smoke" / "improve", prof, root


def test_every_rung_is_scored_in_order_with_its_choice_made_on_validation(ladder):
    table, work, prof, root = ladder
    assert list(table["rung"]) == list(im.RUNG_NAMES)
    choices = imr.choices_json(work / "scored")
    score_of = {}
    for c in choices:
        if not c["candidates"]:
            continue
        for name, cand in c["candidates"].items():
            study = root / "runs" / "smoke" / "improve" / "studies" / cand["study"].split("/studies/")[-1]
            val = pd.concat([pd.read_csv(p) for p in sorted((study / "val").glob("*.csv"))])
            val = val[val["weights"] == "last"]
            folds = pd.read_csv(study / "folds.csv")
            val = val[~val["file"].isin(folds.loc[folds["conflict"], "file"])]
            pred = val[P_COLS].to_numpy().argmax(1)
            recalls = [np.mean(pred[val["y"] == k] == k) for k in range(3) if (val["y"] == k).any()]
            assert cand["validation"] == pytest.approx(np.mean(recalls))  # the choice's number, recomputed
        best = max(c["candidates"], key=lambda n: c["candidates"][n]["validation"])
        assert c["candidates"][c["chosen"]]["validation"] == c["candidates"][best]["validation"]
        score_of[c["rung"]] = c["candidates"][c["chosen"]]["validation"]
        if c["below"] is not None:
            assert c["adopted"] == (score_of[c["rung"]] > score_of[c["below"]])
    # each rung is paired with the last adopted rung below it
    adopted = "baseline"
    for c in choices[1:]:
        assert c["below"] == adopted
        if c["adopted"] and c["candidates"]:
            adopted = c["rung"]


def test_the_rungs_runs_share_the_verdicts_folds_and_live_in_their_own_folders(ladder):
    table, work, prof, root = ladder
    scored = work / "scored"
    oof = pd.concat([pd.read_csv(p) for p in sorted((scored / "oof").glob("*.csv"))])
    cells = {arm: set(map(tuple, g[["file", "fold", "seed", "partition"]].drop_duplicates().to_numpy().tolist()))
             for arm, g in oof.groupby("arm")}
    trained = [r for r in im.RUNG_NAMES if r != "ensemble"]
    assert set(cells) == set(trained) and all(cells[r] == cells["baseline"] for r in trained)
    for study in (work / "studies").iterdir():
        assert pd.read_csv(study / "folds.csv").equals(pd.read_csv(work / "studies" / "baseline" / "folds.csv"))
    runs = pd.read_csv(scored / "runs.csv")
    assert set(runs.loc[runs["arm"] == "baseline", "profile"]) == {"smoke"}
    for rung, p in zip(runs["arm"], runs["profile"]):
        if rung != "baseline":
            assert p.startswith("smoke-improve-") and (root / "runs" / p).is_dir()
    config = json.loads(next((root / "runs" / "smoke-improve-balanced").glob("*/config.json")).read_text())
    assert config["profile"]["loss_weighting"] == "balanced" and config["profile"]["image_size"] == 32
    config = json.loads(next((root / "runs" / "smoke-improve-64px").glob("*/config.json")).read_text())
    assert config["profile"]["image_size"] == 64


def test_a_rung_paired_with_itself_gains_exactly_nothing(ladder):
    _, work, _, _ = ladder
    oof, val = isc._rows(work / "scored")
    r, v = oof[oof["arm"] == "augment"], val[val["arm"] == "augment"]
    gains = isc.paired_scores(r, v, r, v, n_boot=100)
    for m in ("accuracy", "balanced_accuracy"):
        assert (gains[m].value, gains[m].low, gains[m].high) == (0, 0, 0), m
    for m in ("sensitivity", "specificity"):
        assert math.isnan(gains[m].value) or (gains[m].value, gains[m].low, gains[m].high) == (0, 0, 0), m
    scores = isc.rung_scores(r, v, n_boot=100)
    assert scores["accuracy"].value == pytest.approx(np.mean(r[P_COLS].to_numpy().argmax(1) == r["y"]))


def test_the_ensemble_rung_is_the_rung_belows_runs_with_flip_tta(ladder):
    table, work, _, _ = ladder
    row = table.set_index("rung").loc["ensemble"]
    source = row["below"]
    oof, val = isc._rows(work / "scored")
    s = oof[oof["arm"] == source]
    tta = (s[P_COLS].to_numpy() + s[[f"{c}_hflip" for c in P_COLS]].to_numpy()) / 2
    mean = pd.DataFrame(tta, index=s["file"]).groupby(level=0).mean()
    y = s.groupby("file")["y"].first().loc[mean.index]
    assert row["accuracy"] == pytest.approx(np.mean(mean.to_numpy().argmax(1) == y.to_numpy()))
    scores, gains = isc.ensemble_busi(s, val[val["arm"] == source], n_boot=80)
    assert gains["accuracy"].value == pytest.approx(scores["accuracy"].value - table.set_index("rung").loc[source,
                                                                                                       "accuracy"])
    assert row["seconds_per_run"] == 0  # it trains nothing


def test_the_table_has_both_scoreboards_and_the_cost(ladder):
    table, work, _, _ = ladder
    trained = table[table["rung"] != "ensemble"]
    for m in ("accuracy", "balanced_accuracy", "busbra_auc"):
        assert np.isfinite(table[[m, f"{m}_low", f"{m}_high"]].to_numpy()).all(), m
        assert np.isfinite(table.loc[table["below"] != "", f"{m}_gain"]).all(), m
    assert (trained["seconds_per_run"] > 0).all() and trained["device"].str.startswith("cpu").all()
    assert trained["runs"].eq(3).all()
    readme = (work / "README.md").read_text()
    assert "bcdet improve --profile smoke" in readme and "## The goals of issue #31" in readme
    built_on = table.loc[table["below"] != "", "rung"]
    assert "## Inside and outside" in readme and all(f"- `{r}` (vs `" in readme for r in built_on)
    assert all(f"| {r} |" in readme for r in im.RUNG_NAMES)
    meta = json.loads((work / "improve.json").read_text())
    assert meta["commit"] is not None and meta["choice_metric"] == "balanced_accuracy"
    assert (work / "waterfall.png").stat().st_size > 1000 and (work / "improve.csv").exists()


def test_a_rung_that_helps_inside_and_hurts_outside_is_said_so():
    from bcdet_helpers.research.study.improve_report import inside_outside_lines

    def row(rung, below, busi, busbra):  # gains with 95 % intervals of +-1 point around them
        r = {"rung": rung, "below": below}
        for m, g in (("accuracy", busi), ("balanced_accuracy", busi), ("busbra_auc", busbra),
                     ("busbra_sensitivity", busbra)):
            r |= {f"{m}_gain": g, f"{m}_gain_low": g - 0.01, f"{m}_gain_high": g + 0.01}
        return r

    table = pd.DataFrame([{"rung": "baseline", "below": ""}, row("resolution", "baseline", 0.03, -0.04),
                          row("augment", "resolution", 0.005, 0.0)])
    lines = inside_outside_lines(table)
    assert len(lines) == 2 and lines[0].startswith("- `resolution` (vs `baseline`)")
    assert "BUSI accuracy +3.0 [+2.0, +4.0] (helps)" in lines[0] and "(hurts)" in lines[0]
    assert lines[0].endswith("**Helps inside, hurts outside.**")
    assert "no clear change" in lines[1] and "**" not in lines[1]


def test_the_ladder_resumes_without_training_again(ladder, monkeypatch):
    from bcdet_helpers.research.study.improve_report import write_improvement

    table, work, prof, root = ladder
    results = sorted((root / "runs").glob("smoke*/*/result.json"))
    before = {p: p.stat().st_mtime for p in results}
    monkeypatch.setenv("BCDET_DATA", str(root / "busi"))
    monkeypatch.setenv("BCDET_BUSBRA", str(root / "bb" / "BUS-BRA"))
    monkeypatch.setenv("BCDET_RUNS", str(root / "runs"))
    again = write_improvement(prof, jobs=1, progress=False, n_boot=60, command="again", rungs=["imbalance"])
    assert list(again["rung"]) == ["baseline", "imbalance"]
    assert {p: p.stat().st_mtime for p in results} == before


def test_a_real_climb_screens_on_one_seed_and_scores_the_chosen_one_on_all(tmp_path, monkeypatch):
    """The screening path for real (the fixture above has one seed, so its screening is its whole design): two
    seeds, the imbalance rung's two candidates screened on seed 0, the chosen one trained on seed 1 too, and the
    scored folder pairs it with the baseline on both seeds."""
    from bcdet_helpers.research.study.improve_report import write_improvement

    data = make_busi(tmp_path / "busi", 8)
    prof = dataclasses.replace(get_profile("smoke", epochs=1), folds=3, seeds=(0, 1))
    monkeypatch.setenv("BCDET_DATA", str(data))
    monkeypatch.setenv("BCDET_BUSBRA", str(tmp_path / "no-busbra"))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        table = write_improvement(prof, jobs=1, progress=False, n_boot=40, command="test", rungs=["imbalance"],
                                  arm="constant")
    finally:
        torch.set_num_threads(threads)
    work = tmp_path / "runs" / "smoke" / "improve"
    choice = imr.choices_json(work / "scored")[1]
    chosen, other = choice["chosen"], ({"balanced", "logit_adjust"} - {choice["chosen"]}).pop()
    seeds = {name: {int(p.stem.split("seed")[-1].split("-")[0])
                    for p in (work / "studies" / name / "val").glob("*.csv")} for name in (chosen, other)}
    assert seeds == {chosen: {0, 1}, other: {0}}  # the one turned away never trained seed 1
    assert choice["candidates"][other]["screened_on"] == 3 and choice["candidates"][other]["cost"]["runs"] == 3
    assert choice["candidates"][chosen]["cost"]["runs"] == 6 and choice["value"] is not None
    assert list(table["rung"]) == ["baseline", "imbalance"] and table["runs"].tolist() == [6, 6]
    oof = pd.concat([pd.read_csv(p) for p in (work / "scored" / "oof").glob("*.csv")])
    assert oof.groupby("arm")["seed"].unique().map(sorted).to_dict() == {"baseline": [0, 1], "imbalance": [0, 1]}
    assert table.set_index("rung").loc["imbalance", "validation"] == pytest.approx(choice["value"])


def test_the_baseline_takes_verdict_runs_without_weights_from_the_verdicts_record(tmp_path, monkeypatch):
    """A verdict run restored from a committed snapshot, or trained on a lent GPU whose checkpoints stayed there,
    has no weights here: the baseline takes its predictions from the verdict's record, unchanged and without
    training it again, instead of refusing it (#31; the first GPU climb stopped on exactly this)."""
    from bcdet_helpers.research.study import run_study

    data = make_busi(tmp_path / "busi", 8)
    prof = dataclasses.replace(get_profile("smoke", epochs=1), folds=3)
    monkeypatch.setenv("BCDET_DATA", str(data))
    monkeypatch.setenv("BCDET_BUSBRA", str(tmp_path / "no-busbra"))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    design = im.improve_design(prof, "constant")
    run_study(design, jobs=1, progress=False, n_boot=20)  # the verdict's runs of the arm, in runs/smoke/cv
    for weights in (tmp_path / "runs" / "smoke").glob("*/*.pt"):
        weights.unlink()  # as restored from a snapshot
    finished = {p: p.stat().st_mtime for p in (tmp_path / "runs" / "smoke").glob("*/result.json")}
    assert len(finished) == len(design.runs()) == 3
    arm, _, choices = im.climb(prof, ["baseline"], "constant", jobs=1, progress=False, n_boot=20)
    assert arm == "constant" and choices[0].decided and choices[0].value is not None
    verdict, base = tmp_path / "runs" / "smoke" / "cv", tmp_path / "runs" / "smoke" / "improve" / "studies" / "baseline"
    for key in design.runs():
        for part in ("oof", "val"):
            pd.testing.assert_frame_equal(pd.read_csv(base / part / f"{key.name}.csv"),
                                          pd.read_csv(verdict / part / f"{key.name}.csv"))
    assert {p: p.stat().st_mtime for p in finished} == finished  # nothing trained again
    assert len(pd.read_csv(base / "runs.csv")) == 3


# ------------------------------------------------------------------------------------------- the CLI
def test_bcdet_improve_list_prints_the_runs_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    assert main(["improve", "--profile", "smoke", "--list", "--arm", "constant"]) == 0
    lines = capsys.readouterr().out.splitlines()
    runs = [line.split("\t") for line in lines if line[:1].isdigit()]
    assert [int(r[0]) for r in runs] == list(range(len(runs))) and len(runs) == 5 * (1 + 2 + 2 + 1 + 2)
    assert runs[0][1:] == ["baseline", "verdict", "smoke/constant-grouped-fold0-seed0"]
    assert any(r[1:3] == ["resolution", "64px"] for r in runs)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--rungs", "bogus"], "Unknown rung(s) bogus"),
    (["--rungs", "ensemble", "imbalance"], "ensemble must be the last rung"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--arm", "nope"], "Unknown arm 'nope'"),
    (["--profile", "nope"], "Unknown profile 'nope'"),
])
def test_bad_input_is_refused_in_one_line_before_any_work(args, message, busi_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    assert main(["improve", "--profile", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bcdet: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "smoke").exists()


def test_bcdet_improve_writes_runs_and_records_only_when_asked(busi_dir, tmp_path, monkeypatch, capsys):
    """The rules of `bcdet ladder` (issue #27): runs/<profile>/improve/ by default, results/<profile>-improve/
    only with --record; a folder bcdet did not write, or committed records, only with --force -- refused
    before any training."""
    from bcdet_helpers import paths
    from bcdet_helpers.research import plan

    project = tmp_path / "project"
    monkeypatch.setattr(paths, "project_root", lambda: project)
    monkeypatch.setattr(plan, "_pace", lambda *a, **k: (0.5, 1, "a test's pace"))
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_BUSBRA", str(tmp_path / "no-busbra"))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    base = ["improve", "--profile", "smoke", "--rungs", "baseline", "ensemble", "--arm", "constant", "--jobs", "1"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    assert main([*base, "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bcdet: error: Refusing to replace {mine}: bcdet did not write it") and "--force" in err
    assert (mine / "README.md").read_text() == "my notes" and not (tmp_path / "runs" / "smoke").exists()

    assert main(base) == 0
    out = capsys.readouterr().out
    assert "5 of the ladder's 5 runs to train" in out and "BUS-BRA not found" in out
    work = tmp_path / "runs" / "smoke" / "improve"
    assert (work / "improve.csv").exists() and not project.exists()
    assert "bcdet improve --profile smoke --rungs baseline ensemble --arm constant" in (work / "README.md").read_text()

    record = project / "results" / "smoke-improve"
    assert main([*base, "--record"]) == 0
    assert "0 of the ladder's 5 runs to train" in capsys.readouterr().out  # resumed: nothing trained again
    assert (record / "improve.csv").exists() and (record / "scored" / "folds.csv").exists()
    assert "--record" in (record / "README.md").read_text()
    assert main([*base, "--record"]) == 0  # its own record, not committed: written again
    capsys.readouterr()
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        subprocess.run(["git", "add", "results"], cwd=project, check=True)
        assert main([*base, "--record"]) == 2
        assert "of its files are committed to git" in capsys.readouterr().err
        assert main([*base, "--record", "--force"]) == 0
        assert f"--force: replacing" in capsys.readouterr().out
