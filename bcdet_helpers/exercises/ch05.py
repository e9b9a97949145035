"""Chapter 05 (evaluation and the study): a band and an interval to predict, a validation-chosen
threshold to write (the chapter's real coding task), the forest plot's rows to read, an ensemble to
write, the leakage ladder to predict, and an open question."""
from __future__ import annotations

from .core import call, choice, exercise, hint, number, open_exercise


def _width(interval) -> float:
    """Full width of an :class:`~bcdet_helpers.research.stats.Interval`, a ``(low, high)`` pair or a dict."""
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
        hint(f"the band is {side}. The number of right answers on {n} images is binomial: what is its standard "
             "deviation, and how many standard deviations either side hold 95 %?")
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


@exercise("05.5", answer="ensemble_accuracy", title="Write ensemble_accuracy(table): average the members' probabilities",
          kind="code")
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
        hint(f"on {name} you got {got:.3f}, expected {want:.3f}: one prediction per image, made from the members' "
             "averaged probabilities -- which column identifies an image, and which three hold the probabilities?")
    if table is not None and isinstance(table, pd.DataFrame):
        return f"{_reference(table):.3f} on this notebook's table (the toy example: {_reference(toy):.2f})"
    return f"{_reference(toy):.2f} on the example: the confident member outweighs two undecided ones"


def _comparison(text: str) -> str:
    return " - ".join(part.strip() for part in str(text).replace("−", "-").replace("–", "-").lower().split("-"))


@exercise("05.4", answer="switch_effect", title="Read the forest plot: which row isolates the optimizer switch?",
          kind="read")
def which_row(answer, *, comparisons):
    """``comparisons``: :data:`bcdet_helpers.research.study.COMPARISONS` -- ``(a, b, question)`` per row of the plot."""
    rows = {f"{a} - {b}": question for a, b, question in comparisons}
    guess = _comparison(answer)
    if guess not in rows:
        hint(f"answer with one row of the forest plot: {', '.join(repr(r) for r in rows)}")
    truth = next(r for r, q in rows.items() if "switch" in q)  # the first row about the switch: the cleanest
    if guess != truth:
        if guess.startswith("switching") and guess.endswith("constant"):
            hint("that is the paper's comparison, but switching also lowers the rate: it changes two things at "
                 "once. Which arm keeps the rate steps *without* changing the optimizer?")
        if guess == "switching - decay" and truth != guess:
            hint("close: decay keeps one optimizer, but each arm was tuned on its own, so their rates differ too. "
                 "Which row changes the optimizer and nothing else?")
        hint("find the two arms that differ in one thing only, and that thing is whether the optimizer changes "
             "(chapter 04's table of arms)")
    other = rows.get("switching - decay")
    return (f"{truth}: {rows[truth]}. The paper's switching - constant mixes the switch with annealing the rate "
            "(decay - constant)" + ("" if truth == "switching - decay" or other is None else
                                     "; switching - decay compares two tuned arms, whose rates differ as well"))


SELECTION = ("test_epoch", "best_seed", "lucky_fold")  # the choices made on test images
SAME = 0.01  # within one point: "about the same"


@exercise("05.6", answer="predicted_bigger", title="Predict: does the leak or the choices made on test add more?")
def leak_or_choices(answer, *, table):
    """``table``: :func:`bcdet_helpers.research.study.leakage_ladder` (columns ``rung``, ``gain``). The student
    predicts, before the cell that shows the ladder, whether the leak of image-level folds
    (``image_folds``) or the three choices made on test images together (``test_epoch`` + ``best_seed``
    + ``lucky_fold``) add more accuracy to the honest number."""
    import pandas as pd

    guess = choice(answer, ("leak", "choices", "about the same"))
    gain = pd.DataFrame(table).set_index("rung")["gain"]
    leak = float(gain.get("image_folds", float("nan")))
    chosen = float(sum(gain.get(r, 0.0) for r in SELECTION if r in gain.index and gain[r] == gain[r]))
    truth = "about the same" if abs(leak - chosen) <= SAME else "leak" if leak > chosen else "choices"
    measured = f"the leak added {100 * leak:+.1f} points, the three choices together {100 * chosen:+.1f}"
    if guess != truth:
        hint(f"here {measured}. Each choice reports the *maximum* of several noisy test scores (epochs, seeds, "
             "folds): how far above the mean does a maximum of noisy numbers climb? And how many test images "
             "have a near-copy in the training folds?")
    return (f"{measured}: " + ("picking the best of many noisy test scores inflates more than BUSI's "
                               "near-duplicates leak" if truth == "choices" else
                               "here the near-duplicates leak more than the choices inflate" if truth == "leak" else
                               "here the two are within a point of each other"))


def _toy_threshold():
    import numpy as np

    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])
    malignant = np.array([1, 1, 0, 1, 1, 0, 1, 0, 0, 0], bool)  # 5 malignant; 90 % of 5 -> 5 must be found
    return p, malignant


def reference_threshold(p_malignant, is_malignant, sensitivity: float = 0.9) -> float:
    """The largest threshold that still finds ``sensitivity`` of the malignant images (those with
    ``p_malignant >= threshold``): the package's :func:`bcdet_helpers.metrics.choose_threshold`, which the
    study uses for its malignant operating point."""
    from ..metrics import choose_threshold

    return choose_threshold(is_malignant, p_malignant, sensitivity)


@exercise("05.3", answer="choose_threshold", title="Write choose_threshold(p, is_malignant, sensitivity)",
          kind="code")
def choose_threshold(function, *, p_malignant=None, is_malignant=None, sensitivity=0.9):
    """``p_malignant`` / ``is_malignant``: the validation images' predicted probability of malignancy and
    their truth (the notebook passes chapter 04's run's validation images). The student returns the largest
    threshold ``t`` such that calling "malignant" whenever ``p >= t`` finds at least ``sensitivity`` of the
    malignant images."""
    import numpy as np

    cases = [(*_toy_threshold(), 0.9, "a ten-image example"), (*_toy_threshold(), 0.6, "the same example at 60 %")]
    if p_malignant is not None and is_malignant is not None:
        cases.append((np.asarray(p_malignant, float), np.asarray(is_malignant, bool), sensitivity,
                      "this notebook's validation images"))
    for p, m, target, name in cases:
        want = reference_threshold(p, m, target)
        got = number(call(function, p.copy(), m.copy(), target))
        if abs(got - want) < 1e-9:
            continue
        found = float((p[m] >= got).mean()) if m.any() else float("nan")
        if found < target:
            hint(f"on {name} your threshold {got:.3g} finds {found:.0%} of the malignant images, fewer than "
                 f"{target:.0%}: is an image *at* the threshold called malignant (>=), and do you count among the "
                 "malignant images only?")
        if got < want:
            hint(f"on {name} your threshold {got:.3g} finds enough malignant images, but a higher one would too "
                 f"(and call fewer benign and normal images malignant): the question asks for the largest")
        hint(f"on {name} you returned {got:.3g}, expected {want:.3g}: return the threshold itself, a probability")
    return (f"{want:.3f} on {name}: chosen on validation images, it is then used unchanged on the test images -- "
            "never tuned on them")


open_exercise("05.7", "no_effect_reply", "Open question: the CI includes zero -- so switching does nothing?")
