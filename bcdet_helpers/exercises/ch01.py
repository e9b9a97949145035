"""Chapter 01 (what is in BUSI?): a prediction, a function and a figure to read."""
from __future__ import annotations

from .core import call, exercise, hint, number


@exercise("01.1", answer="predicted_accuracy", title="Predict the accuracy of always guessing the largest class")
def majority_accuracy(answer, *, counts):
    """``counts``: images per class (a pandas Series or a dict), as the class-balance cell measures them."""
    counts = dict(counts)
    truth = max(counts.values()) / sum(counts.values())
    guess = number(answer)
    if guess > 1:
        hint("give a fraction between 0 and 1, not a percentage")
    if abs(guess - 1 / len(counts)) < 0.02:
        hint(f"1/{len(counts)} is what a balanced dataset would give; are BUSI's classes the same size?")
    if abs(guess - truth) > 0.03:
        hint("the rule answers the largest class for every image, so it is right exactly on that class's "
             "images: divide its count by the total")
    return f"the measured share is {truth:.3f}: the floor every model in this course must beat"


@exercise("01.2", answer="label_conflicts", title="Write label_conflicts(pairs)")
def label_conflicts(function, *, pairs):
    """``pairs``: the near-duplicate pairs (columns file_a, file_b, class_a, class_b, ...)."""
    import pandas as pd

    toy = pd.DataFrame({"file_a": ["a", "b", "c"], "file_b": ["x", "y", "z"],
                        "class_a": ["benign", "benign", "normal"], "class_b": ["benign", "malignant", "normal"],
                        "similarity": [0.99, 0.95, 0.8]})
    for frame, name in ((toy, "a three-row example"), (pairs, "BUSI's pairs")):
        got = call(function, frame.copy())
        if not isinstance(got, pd.DataFrame):
            hint(f"return the matching rows of `pairs` (a DataFrame), not a {type(got).__name__}")
        want = frame[frame["class_a"] != frame["class_b"]]
        key = lambda df: sorted(zip(df["file_a"], df["file_b"]))  # noqa: E731
        if key(got) == key(want):
            continue
        if len(got) == len(frame):
            hint(f"on {name} you kept every pair; keep only those whose class_a differs from class_b")
        if key(got) == key(frame[frame["class_a"] == frame["class_b"]]):
            hint(f"on {name} you kept the pairs with the *same* label; flip the comparison")
        hint(f"on {name} you returned {len(got)} rows, expected {len(want)}: compare the columns "
             "class_a and class_b row by row (pairs[mask] keeps the rows where mask is True)")
    n = int((pairs["class_a"] != pairs["class_b"]).sum())
    return f"{n} pair(s) in this dataset carry two different labels"


@exercise("01.3", answer="same_scan_from", title="Read the pair galleries: where do pairs become the same scan?")
def same_scan_threshold(answer, *, threshold):
    """``threshold``: the finder's threshold (``duplicates.THRESHOLD``), which the galleries justify."""
    value = number(answer)
    if value not in (0.5, 0.6, 0.7):
        hint("answer with the lower edge of one band: 0.5, 0.6 or 0.7")
    if value < threshold - 0.15:
        hint("look again at the 0.50-0.60 gallery: are those the same scan, or two scans that look alike?")
    if value < threshold:
        hint("look again at the 0.60-0.70 gallery: are *all* its pairs the same lesion in the same frame?")
    return f"the finder's threshold is {threshold:.2f}; the next cell explains what each band shows"
