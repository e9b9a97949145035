"""Chapter 06 (another hospital): a prediction of the internal-vs-external AUC, a threshold carried over
from BUSI validation images to BUS-BRA (the chapter's coding task), and an open question."""
from __future__ import annotations

from .core import call, choice, exercise, hint, open_exercise


def _toy():
    """Ten validation images and eight external ones: a threshold that finds 90 % of the malignant
    validation images finds fewer on a set whose scores run lower."""
    import numpy as np

    p_val = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])
    y_val = np.array([1, 1, 0, 1, 1, 0, 1, 0, 0, 0], bool)
    p_ext = np.array([0.9, 0.5, 0.25, 0.2, 0.35, 0.1, 0.05, 0.3])
    y_ext = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    return p_val, y_val, p_ext, y_ext


def reference_carry_over(p_val, y_val, p_ext, y_ext, sensitivity: float = 0.9) -> tuple[float, float, float]:
    """``(threshold, sensitivity, specificity)``: the threshold chosen on validation images with
    :func:`bcdet_helpers.metrics.choose_threshold`, applied unchanged to the external images."""
    import numpy as np

    from ..metrics import choose_threshold

    t = choose_threshold(y_val, p_val, sensitivity)
    called = np.asarray(p_ext, float) >= t
    y = np.asarray(y_ext, bool)
    return float(t), float(called[y].mean()), float((~called[~y]).mean())


@exercise("06.2", answer="carry_over", title="Write carry_over(...): a validation threshold applied to BUS-BRA",
          kind="code")
def carry_over(function, *, p_val=None, y_val=None, p_ext=None, y_ext=None, sensitivity=0.9):
    """``p_val`` / ``y_val``: p(malignant) and truth (malignant or not) of the run's BUSI validation
    images; ``p_ext`` / ``y_ext``: the same for BUS-BRA (the notebook passes its own). The student
    returns ``(threshold, sensitivity, specificity)``: the largest threshold that finds ``sensitivity``
    of the malignant *validation* images, then the sensitivity and specificity it gives on the
    *external* images, unchanged."""
    import numpy as np

    cases = [(*_toy(), 0.9, "a small example")]
    if p_val is not None and p_ext is not None:
        cases.append((np.asarray(p_val, float), np.asarray(y_val, bool), np.asarray(p_ext, float),
                      np.asarray(y_ext, bool), sensitivity, "this notebook's images"))
    for pv, yv, pe, ye, target, name in cases:
        want = reference_carry_over(pv, yv, pe, ye, target)
        got = call(function, pv.copy(), yv.copy(), pe.copy(), ye.copy(), target)
        try:
            got = tuple(float(g) for g in got)
        except TypeError:
            hint("return three numbers: (threshold, sensitivity, specificity)")
        if len(got) != 3:
            hint("return three numbers: (threshold, sensitivity, specificity)")
        if abs(got[0] - want[0]) > 1e-9:
            ext = reference_carry_over(pe, ye, pe, ye, target)[0]
            if abs(got[0] - ext) < 1e-9:
                hint(f"on {name} your threshold was chosen on the external images: a clinic fixes it *before* it "
                     "sees its own labels, on the validation images")
            hint(f"on {name} your threshold {got[0]:.3g} is not the validation one ({want[0]:.3g}): the largest "
                 "threshold that still finds the target share of the malignant validation images (p >= t)")
        if abs(got[1] - want[1]) > 1e-9 or abs(got[2] - want[2]) > 1e-9:
            hint(f"on {name} the threshold is right, but sensitivity/specificity come out {got[1]:.3f}/{got[2]:.3f}: "
                 "sensitivity counts among the malignant external images, specificity among the others, and an "
                 "image at the threshold is called malignant")
    return (f"threshold {want[0]:.3f} from validation gives sensitivity {want[1]:.3f}, specificity {want[2]:.3f} on "
            f"{name}: the {target:.0%} promised on BUSI is not what the other hospital gets")


@exercise("06.1", answer="predicted_auc", title="Predict: is the AUC on BUS-BRA higher or lower than on BUSI?")
def higher_or_lower(answer, *, internal_auc=None, external_auc=None):
    """``internal_auc`` / ``external_auc``: the benign-vs-malignant AUC of the same run on its BUSI test
    fold and on BUS-BRA (intervals or numbers). Without them (a run not recorded yet) only the form of the
    answer is checked."""
    guess = choice(answer, ("higher", "lower", "same"))

    def value(x):
        x = x["value"] if isinstance(x, dict) else getattr(x, "value", x)
        return float("nan") if x is None else float(x)

    if internal_auc is None or external_auc is None:
        return f"{guess!r} written down: the cells below measure both AUCs"
    a, b = value(internal_auc), value(external_auc)
    if not (a == a and b == b):  # NaN: a set without both benign and malignant lesions (a tiny smoke run)
        return f"{guess!r} written down: this run could not measure both AUCs (too few lesions of one kind)"
    truth = "same" if abs(a - b) <= 0.01 else "higher" if b > a else "lower"
    if guess != truth:
        hint(f"this run measured {b:.3f} on BUS-BRA against {a:.3f} on BUSI. A model learns its training hospital's "
             "scanner, settings and patients along with the lesions: which of these does another hospital share?")
    return (f"BUS-BRA {b:.3f} vs BUSI {a:.3f}: " +
            ("the ranking of lesions degrades on another hospital's images" if truth == "lower" else
             "here the ranking transferred -- look at the intervals before calling it better" if truth == "higher"
             else "here the ranking transferred within a point -- the intervals say how sure that is"))


open_exercise("06.3", "clinic_needs", "Open question: what would a screening clinic need before using this model?")
