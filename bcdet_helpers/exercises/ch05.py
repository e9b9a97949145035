"""Chapter 05 (evaluation and the study): a band to predict, an interval to predict, an ensemble to
write, the forest plot's rows to read, and the leakage ladder's biggest step to predict."""
from __future__ import annotations

from .core import call, choice, exercise, hint, number


def _width(interval) -> float:
    """Full width of an :class:`~bcdet_helpers.stats.Interval`, a ``(low, high)`` pair or a dict."""
    if isinstance(interval, dict):
        return float(interval["high"]) - float(interval["low"])
    if hasattr(interval, "low"):
        return float(interval.high) - float(interval.low)
    low, high = interval
    return float(high) - float(low)


@exercise("05.1", answer="predicted_half_width", title="Predict: how wide is the band around a true 90 % on n images?")
def binomial_band(answer, *, n, accuracy=0.90):
    """``n``: the test images of one fold in this run; ``accuracy``: the paper's claimed 90 %.

    The student predicts the half-width (a fraction: 0.05 = +-5 points) of the range that holds the
    observed accuracy of a model that is truly ``accuracy``-accurate in 95 % of test sets of ``n``
    images (binomial)."""
    from scipy import stats

    n = int(n)
    low, high = stats.binom.interval(0.95, n, accuracy)
    truth = (high - low) / 2 / n
    guess = number(answer)
    if guess >= 1:
        hint("give a fraction (0.05 means +-5 points), not a number of points")
    if guess <= 0:
        hint("a half-width is positive: how far from 90 % can an honest 90 % model land?")
    if abs(guess - truth) > max(0.015, 0.3 * truth):
        side = "wider" if guess < truth else "narrower"
        hint(f"the band is {side}. The number of right answers on {n} images is binomial: its standard deviation "
             f"is sqrt(n p (1 - p)) images, so the accuracy's is sqrt(p (1 - p) / n); 95 % is about two of those "
             "either side")
    return (f"on {n} images a true {accuracy:.0%} shows between {low / n:.1%} and {high / n:.1%} "
            f"(+-{truth:.1%}): one run's accuracy is a band, not a point")


@exercise("05.2", answer="predicted_ci", title="Predict: is the clustered CI wider or narrower than the image-level one?")
def clustered_vs_image_level(answer, *, clustered, image_level):
    """``clustered`` / ``image_level``: the 95 % CI of the same accuracy from a bootstrap over
    near-duplicate groups and over images (``Interval``, ``(low, high)`` or ``{"low", "high"}``)."""
    guess = choice(answer, ("wider", "narrower", "same"))
    wc, wi = _width(clustered), _width(image_level)
    truth = "same" if abs(wc - wi) <= 0.02 * wi else "wider" if wc > wi else "narrower"
    if guess != truth:
        hint(f"this run measured a clustered width of {100 * wc:.1f} points against {100 * wi:.1f} image-level. "
             "Two copies of one scan are almost always both right or both wrong: does counting them as two "
             "independent images make the score look more or less certain than it is?")
    extra = ("" if truth == "wider" else " (here the near-duplicate groups in this fold are few or the copies "
             "disagree, so the two bootstraps nearly coincide; the pooled study, where every seed's prediction "
             "of an image joins its group, shows the difference clearly)")
    return (f"clustered {100 * wc:.1f} points vs image-level {100 * wi:.1f}: resampling whole groups keeps the "
            f"copies together, and the interval tells the truth about how little the copies add{extra}")


def _toy_table():
    """Three members (models), four images: averaging probabilities, voting and averaging the members'
    accuracies give three different answers."""
    import pandas as pd

    rows = []
    # (file, y, member probabilities for [benign, malignant, normal])
    data = {
        "a.png": (0, [[0.40, 0.35, 0.25], [0.45, 0.50, 0.05], [0.90, 0.05, 0.05]]),  # mean: benign (right); vote: benign
        "b.png": (1, [[0.55, 0.45, 0.00], [0.55, 0.45, 0.00], [0.05, 0.95, 0.00]]),  # mean: malignant (right); vote: benign
        "c.png": (2, [[0.45, 0.20, 0.35], [0.60, 0.05, 0.35], [0.60, 0.05, 0.35]]),  # mean, vote: benign (wrong)
        "d.png": (1, [[0.20, 0.70, 0.10], [0.10, 0.80, 0.10], [0.60, 0.30, 0.10]]),  # mean: malignant (right)
    }
    for file, (y, members) in data.items():
        for m, p in enumerate(members):
            rows.append({"file": file, "y": y, "member": m, "p_benign": p[0], "p_malignant": p[1], "p_normal": p[2]})
    return pd.DataFrame(rows)


def _reference(table) -> float:
    import numpy as np

    cols = ["p_benign", "p_malignant", "p_normal"]
    mean = table.groupby("file")[cols + ["y"]].mean()
    return float(np.mean(mean[cols].to_numpy().argmax(1) == mean["y"].to_numpy()))


@exercise("05.3", answer="ensemble_accuracy", title="Write ensemble_accuracy(table): average the members' probabilities")
def ensemble_accuracy(function, *, table=None):
    """``table``: one row per (image, member) with ``file``, ``y``, ``member`` and ``p_benign``,
    ``p_malignant``, ``p_normal`` -- the notebook passes its own (members = the arms, or the seeds
    of the study); without it only the built-in example is checked."""
    import pandas as pd

    toy = _toy_table()
    per_member = toy.assign(ok=toy[["p_benign", "p_malignant", "p_normal"]].to_numpy().argmax(1) == toy["y"])
    member_mean = float(per_member.groupby("member")["ok"].mean().mean())
    for frame, name in ((toy, "a four-image example"), (table, "this notebook's table")):
        if frame is None:
            continue
        got = number(call(function, frame.copy()))
        want = _reference(frame)
        if abs(got - want) < 1e-9:
            continue
        if name.startswith("a four") and abs(got - member_mean) < 1e-9:
            hint("you averaged the members' accuracies; an ensemble first averages their *probabilities* per "
                 "image (groupby('file')), then takes the arg-max once")
        if name.startswith("a four") and abs(got - 0.5) < 1e-9:
            hint("that is a majority vote of the members' predicted classes; average the probabilities instead -- "
                 "a confident member then outweighs two undecided ones")
        if got > 1:
            hint("give the accuracy as a fraction between 0 and 1")
        hint(f"on {name} you got {got:.3f}, expected {want:.3f}: mean of p_benign, p_malignant, p_normal per "
             "file, arg-max over those three columns (in that order), compare with y")
    if table is not None and isinstance(table, pd.DataFrame):
        return f"{_reference(table):.3f} on this notebook's table (the toy example: {_reference(toy):.2f})"
    return f"{_reference(toy):.2f} on the example: the confident member outweighs two undecided ones"


def _comparison(text: str) -> str:
    return " - ".join(part.strip() for part in str(text).replace("−", "-").replace("–", "-").lower().split("-"))


@exercise("05.4", answer="switch_effect", title="Read the forest plot: which row isolates the optimizer switch?")
def which_row(answer, *, comparisons):
    """``comparisons``: :data:`bcdet_helpers.study.COMPARISONS` -- ``(a, b, question)`` per row of the plot."""
    rows = {f"{a} - {b}": question for a, b, question in comparisons}
    guess = _comparison(answer)
    if guess not in rows:
        hint(f"answer with one row of the forest plot: {', '.join(repr(r) for r in rows)}")
    truth = next(r for r, q in rows.items() if "switch" in q)
    if guess != truth:
        if guess.startswith("switching") and guess.endswith("constant"):
            hint("that is the paper's comparison, but switching also lowers the rate: it changes two things at "
                 "once. Which arm lowers the rate in the same steps *without* changing the optimizer?")
        hint("find the two arms that differ *only* in whether the optimizer changes (chapter 04's 2 x 2 table)")
    return (f"{truth}: the same rate steps, with and without the switch. The paper's switching - constant mixes "
            "that with the effect of annealing the rate (decay - constant)")


LADDER_STEPS = ("image_folds", "test_epoch", "best_seed", "lucky_fold", "augment_before_split")


@exercise("05.5", answer="predicted_rung", title="Predict: which step of the leakage ladder adds the most?")
def biggest_rung(answer, *, table):
    """``table``: :func:`bcdet_helpers.study.leakage_ladder` (columns ``rung``, ``gain``, ``label``).
    The student predicts, before the cell that shows the ladder, which of the four steps above the
    honest number adds the most accuracy (five where the study has the ``augment_before_split`` runs)."""
    import pandas as pd

    guess = choice(answer, LADDER_STEPS)
    t = pd.DataFrame(table).set_index("rung")
    steps = t.loc[[r for r in LADDER_STEPS if r in t.index], "gain"]
    truth = str(steps.idxmax())
    if guess != truth:
        measured = ", ".join(f"{r} {100 * g:+.1f}" for r, g in steps.items())
        hint(f"here the steps measured {measured} points. Each inflation step takes the *maximum* of several "
             "noisy test scores (epochs, seeds, folds): the more choices and the noisier each one, the higher the "
             "maximum climbs above the honest mean. Leakage instead lets the model recognise near-copies of test "
             "images it trained on: how many BUSI images have such copies?")
    return (f"{truth} adds the most here ({100 * steps[truth]:+.1f} points): "
            + ("choosing one of ~50 epochs on the test images fits the noise of ~150 test images per fold"
               if truth == "test_epoch" else
               "near-duplicates in the training folds let the model recall test images rather than recognise lesions"
               if truth == "image_folds" else
               "a flipped or rotated copy of a test image is still that image: the model learned its answer"
               if truth == "augment_before_split" else
               "a maximum over noisy scores climbs with the number of choices"))
