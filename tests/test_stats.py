"""bcdet_helpers.research.stats on constructed data: numbers worked out by hand, and properties that fail
when the clustering or the correction is dropped."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bcdet_helpers import evaluate as ev
from bcdet_helpers.research import stats as st

# the hand-worked confusion matrix of test_evaluate.py
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 0, 2, 2, 1])


def noisy(y, accuracy, rng):
    """Predictions that are right with probability ``accuracy`` (else a random other class)."""
    wrong = rng.random(len(y)) > accuracy
    return np.where(wrong, (y + rng.integers(1, 3, len(y))) % 3, y)


def test_scores_from_confusion_match_scikit_learn_metrics():
    m = ev.metrics(Y_TRUE, np.eye(3)[Y_PRED])
    s = st.scores_from_confusion(np.asarray(m["confusion_matrix"]))
    assert s["accuracy"] == pytest.approx(0.7)
    assert s["macro_f1"] == pytest.approx(m["macro_f1"])
    assert s["recall"] == pytest.approx([3 / 4, 2 / 3, 2 / 3])
    # a class absent from the truth: recall nan, left out of macro-F1 (as evaluate.metrics does)
    s = st.scores_from_confusion(np.array([[2, 1, 0], [0, 3, 0], [0, 0, 0]]))
    assert math.isnan(s["recall"][2])
    assert s["macro_f1"] == pytest.approx(ev.macro_f1([0, 0, 0, 1, 1, 1], np.eye(3)[[0, 0, 1, 1, 1, 1]]))


def test_resample_counts_draw_every_group_count_times():
    c = st.resample_counts(50, 400, seed=1)
    assert c.shape == (400, 50)
    assert (c.sum(1) == 50).all()
    assert c.mean() == pytest.approx(1.0)
    assert (c == 0).mean() == pytest.approx((49 / 50) ** 50, abs=0.02)  # ~36 % of groups left out


def test_cluster_bootstrap_point_estimates_are_the_pooled_metrics():
    out = st.cluster_bootstrap(Y_TRUE, np.eye(3)[Y_PRED], groups=[0, 0, 1, 2, 3, 3, 4, 5, 6, 7], n_boot=200)
    m = ev.metrics(Y_TRUE, np.eye(3)[Y_PRED])
    assert out["accuracy"].value == pytest.approx(m["accuracy"])
    assert out["macro_f1"].value == pytest.approx(m["macro_f1"])
    assert [r.value for r in out["recall"]] == pytest.approx([m["per_class"][c]["recall"] for c in ev.CLASSES])
    assert out["n_groups"] == 8 and out["n_rows"] == 10
    assert out["accuracy"].low <= out["accuracy"].value <= out["accuracy"].high


def test_singleton_groups_are_the_image_level_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    pred = noisy(y, 0.8, rng)
    a = st.cluster_bootstrap(y, pred, None, n_boot=500, seed=3)
    b = st.cluster_bootstrap(y, pred, np.arange(300) * 7, n_boot=500, seed=3)
    assert (a["accuracy"].low, a["accuracy"].high) == (b["accuracy"].low, b["accuracy"].high)


def test_clustered_ci_is_wider_than_the_image_level_ci_when_groups_hold_copies():
    """150 scans, each present as 4 copies with the same prediction: 600 rows but only 150
    independent cases. The image-level CI pretends there are 600 (half-width ~1/2 of the truth)."""
    rng = np.random.default_rng(1)
    y0 = rng.integers(0, 3, 150)
    p0 = noisy(y0, 0.8, rng)
    y, pred, groups = np.repeat(y0, 4), np.repeat(p0, 4), np.repeat(np.arange(150), 4)
    clustered = st.cluster_bootstrap(y, pred, groups, n_boot=2000)
    image = st.cluster_bootstrap(y, pred, None, n_boot=2000)
    assert clustered["accuracy"].value == image["accuracy"].value
    ratio = clustered["accuracy"].half_width / image["accuracy"].half_width
    assert 1.6 < ratio < 2.5  # sqrt(4) = 2 in theory
    assert clustered["macro_f1"].half_width > 1.5 * image["macro_f1"].half_width
    # and the clustered CI of the copies equals the CI of the 150 scans alone
    alone = st.cluster_bootstrap(y0, p0, None, n_boot=2000)
    assert clustered["accuracy"].half_width == pytest.approx(alone["accuracy"].half_width, rel=0.15)


def test_paired_bootstrap_difference_and_its_width():
    rng = np.random.default_rng(2)
    n = 400
    y = rng.integers(0, 3, n)
    a = noisy(y, 0.8, rng)
    b = a.copy()
    right = np.flatnonzero(a == y)[:20]
    b[right] = (y[right] + 1) % 3  # B = A with 20 more mistakes
    groups = np.arange(n) // 2  # pairs of copies
    same = st.paired_cluster_bootstrap(y, a, groups, y, a, groups, n_boot=300)
    assert same["accuracy"].value == 0 and same["accuracy"].low == 0 and same["accuracy"].high == 0
    d = st.paired_cluster_bootstrap(y, a, groups, y, b, groups, n_boot=2000)
    assert d["accuracy"].value == pytest.approx(20 / n)
    assert d["accuracy"].low > 0  # B is never better on any resample of these images
    # pairing: the paired CI is far narrower than two separate CIs would suggest
    sep = [st.cluster_bootstrap(y, p, groups, n_boot=2000)["accuracy"].se for p in (a, b)]
    assert d["accuracy"].se < 0.5 * math.hypot(*sep)


def test_paired_bootstrap_pairs_by_group_not_by_row_order():
    """Rows of B in another order, and with two seeds' rows for A: the result only depends on
    which group each row belongs to."""
    rng = np.random.default_rng(3)
    n = 200
    y = rng.integers(0, 3, n)
    a, b = noisy(y, 0.85, rng), noisy(y, 0.7, rng)
    g = np.arange(n) // 4
    perm = rng.permutation(n)
    d1 = st.paired_cluster_bootstrap(y, a, g, y, b, g, n_boot=500, seed=5)
    d2 = st.paired_cluster_bootstrap(y, a, g, y[perm], b[perm], g[perm], n_boot=500, seed=5)
    assert d1["accuracy"].value == pytest.approx(d2["accuracy"].value)
    assert (d1["accuracy"].low, d1["accuracy"].high) == pytest.approx((d2["accuracy"].low, d2["accuracy"].high))
    d3 = st.paired_cluster_bootstrap(np.tile(y, 2), np.tile(a, 2), np.tile(g, 2), y, b, g, n_boot=500, seed=5)
    assert d3["accuracy"].value == pytest.approx(d1["accuracy"].value)


def test_corrected_ttest_matches_a_hand_computation():
    # d: mean 0.03, squared deviations 1,1,9,9,0 (x 1e-4) -> var 5e-4; n_test/n_train = 0.25
    # corrected var (1/5 + 0.25) * 5e-4 = 2.25e-4 -> se 0.015 -> t = 2.0 (naive: se 0.01, t = 3.0)
    r = st.corrected_ttest([0.02, 0.04, 0.00, 0.06, 0.03], n_train=400, n_test=100)
    assert r.n == 5 and r.df == 4
    assert r.mean == pytest.approx(0.03)
    assert r.sd == pytest.approx(math.sqrt(5e-4))
    assert r.se == pytest.approx(0.015)
    assert r.naive_se == pytest.approx(0.01)
    assert r.t == pytest.approx(2.0)
    assert r.p == pytest.approx(2 * sps.t.sf(2.0, 4))
    assert r.p > 0.05 > 2 * sps.t.sf(3.0, 4)  # the uncorrected test would call this significant
    q = sps.t.ppf(0.975, 4)
    assert (r.low, r.high) == pytest.approx((0.03 - q * 0.015, 0.03 + q * 0.015))


def test_corrected_ttest_edge_cases():
    one = st.corrected_ttest([0.05], 400, 100)
    assert one.n == 1 and math.isnan(one.p) and math.isnan(one.se)
    flat = st.corrected_ttest([0.0, 0.0, 0.0], 400, 100)
    assert flat.p == 1.0
    with pytest.raises(ValueError):
        st.corrected_ttest([0.1, 0.2], 0, 100)


def test_detectable_difference_and_power_agree():
    assert st.detectable_difference(0.01) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-5)
    mdd = st.detectable_difference(0.01)
    assert st.power_at(mdd, 0.01) == pytest.approx(0.8, abs=0.002)
    assert st.power_at(0.0, 0.01) == pytest.approx(0.05)
    # with few degrees of freedom the t quantiles make the detectable difference larger
    assert st.detectable_difference(0.01, df=4) > st.detectable_difference(0.01, df=40) > mdd
    assert st.power_at(st.detectable_difference(0.01, df=14), 0.01, df=14) == pytest.approx(0.8, abs=0.03)
    iv = st.Interval(0.02, -0.01, 0.05, 0.015)
    assert st.bootstrap_detectable_difference(iv) == pytest.approx(st.detectable_difference(0.015))
    assert math.isnan(st.detectable_difference(math.nan))


def test_the_two_way_bootstrap_adds_training_variance_and_reduces_to_the_group_bootstrap():
    """#28: with one training replicate it is the clustered bootstrap; with seeds that disagree it is wider."""
    rng = np.random.default_rng(3)
    n = 240
    y = rng.integers(0, 3, n)
    groups = np.arange(n) // 2
    preds = [np.where(rng.random(n) < acc, y, (y + 1) % 3) for acc in (0.55, 0.7, 0.85)]
    one = st.hierarchical_bootstrap(y, preds[0], groups, np.zeros(n), n_boot=500)
    assert one["accuracy"] == st.cluster_bootstrap(y, preds[0], groups, n_boot=500)["accuracy"]
    Y, P, G, U = (np.concatenate(x) for x in ([y] * 3, preds, [groups] * 3, [np.full(n, s) for s in range(3)]))
    three = st.hierarchical_bootstrap(Y, P, G, U, n_boot=500)
    fixed = st.cluster_bootstrap(Y, P, G, n_boot=500)
    assert three["n_units"] == 3 and three["accuracy"].value == pytest.approx(fixed["accuracy"].value)
    assert three["accuracy"].half_width > 2 * fixed["accuracy"].half_width
    paired = st.paired_hierarchical_bootstrap(Y, P, G, U, Y, np.concatenate([preds[0]] * 3), G, U, n_boot=500)
    assert paired["accuracy"].value == pytest.approx(fixed["accuracy"].value - one["accuracy"].value)
    with pytest.raises(ValueError, match="same training replicates"):
        st.paired_hierarchical_bootstrap(Y, P, G, U, y, preds[0], groups, np.zeros(n), n_boot=10)
