"""Chapter 01 (what is in BUSI?): a prediction, a figure to read, two functions to write (the second
one the chapter's real coding task: near-duplicate groups from pairs) and an open question."""
from __future__ import annotations

from .core import call, exercise, hint, number, open_exercise


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
        hint("the rule gives one answer for every image: on which images is that answer right, and what "
             "share of the dataset are they?")
    return f"the measured share is {truth:.3f}: the floor every model in this course must beat"


@exercise("01.2", answer="same_scan_from", title="Read the pair galleries: where do pairs become the same scan?",
          kind="read")
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


def _toy_pairs():
    import pandas as pd

    return pd.DataFrame({"file_a": ["a", "b", "c"], "file_b": ["x", "y", "z"],
                         "class_a": ["benign", "benign", "normal"], "class_b": ["benign", "malignant", "normal"],
                         "similarity": [0.99, 0.95, 0.8]})


@exercise("01.3", answer="label_conflicts", title="Write label_conflicts(pairs)", kind="code")
def label_conflicts(function, *, pairs):
    """``pairs``: the near-duplicate pairs (columns file_a, file_b, class_a, class_b, ...)."""
    import pandas as pd

    for frame, name in ((_toy_pairs(), "a three-row example"), (pairs, "BUSI's pairs")):
        got = call(function, frame.copy())
        if not isinstance(got, pd.DataFrame):
            hint(f"return the matching rows of `pairs` (a DataFrame), not a {type(got).__name__}")
        want = frame[frame["class_a"] != frame["class_b"]]
        key = lambda df: sorted(zip(df["file_a"], df["file_b"]))  # noqa: E731
        if key(got) == key(want):
            continue
        if len(got) == len(frame):
            hint(f"on {name} you kept every pair; which pairs are the conflicts?")
        if key(got) == key(frame[frame["class_a"] == frame["class_b"]]):
            hint(f"on {name} you kept the pairs with the *same* label; look at your comparison again")
        hint(f"on {name} you returned {len(got)} rows, expected {len(want)}: which two columns say what each "
             "image of a pair is labelled?")
    n = int((pairs["class_a"] != pairs["class_b"]).sum())
    return f"{n} pair(s) in this dataset carry two different labels"


def _partition(labels) -> list[int]:
    """Group labels rewritten as 'index of the first member', so two labelings of one partition compare equal."""
    first: dict = {}
    return [first.setdefault(label, i) for i, label in enumerate(labels)]


def _toy_chain():
    """Six files: a-b and b-c chain into one group (a and c are no pair), e-f a second, d alone."""
    import pandas as pd

    files = ["a", "b", "c", "d", "e", "f"]
    pairs = pd.DataFrame({"file_a": ["a", "b", "e"], "file_b": ["b", "c", "f"],
                          "class_a": ["benign"] * 3, "class_b": ["benign"] * 3, "similarity": [0.9, 0.8, 0.95]})
    return files, pairs


@exercise("01.4", answer="group_ids", title="Write group_ids(files, pairs): near-duplicate groups from pairs",
          kind="code")
def group_ids(function, *, files=None, pairs=None):
    """``files``: every image (the index's ``file`` column); ``pairs``: its near-duplicate pairs. The
    student's function returns one group label per file; any labels will do, as long as two files share
    a label exactly when a chain of pairs links them (the connected components of the pair graph,
    which the index's ``group`` column holds)."""
    from ..data.similarity import duplicate_groups

    cases = [(*_toy_chain(), "a six-file example (a-b, b-c, e-f; d in no pair)")]
    if files is not None and pairs is not None:
        cases.append((list(files), pairs, "BUSI's images and pairs"))
    for fs, ps, name in cases:
        got = call(function, list(fs), ps.copy())
        try:
            got = list(got)
        except TypeError:
            hint(f"return one group label per file (a list or an array), not a {type(got).__name__}")
        if len(got) != len(fs):
            hint(f"on {name} you returned {len(got)} labels for {len(fs)} files: every file needs one, "
                 "including the files that are in no pair")
        want = _partition(duplicate_groups(fs, ps))
        mine = _partition(got)
        if mine == want:
            continue
        n_want, n_mine = len(set(want)), len(set(mine))
        if n_mine > n_want:
            hint(f"on {name} you found {n_mine} groups, there are {n_want}: two files that are not a pair "
                 "can still belong together -- what if each of them pairs with the same third file?")
        hint(f"on {name} you found {n_mine} groups, there are {n_want}: you merged files that no chain of pairs "
             "links; a file in no pair is a group of its own")
    from collections import Counter

    fs, ps, name = cases[-1]
    big = sum(1 for size in Counter(duplicate_groups(fs, ps)).values() if size > 1)
    return (f"the same groups as the index's `group` column ({big} groups of two or more images in {name}): "
            "a chain of pairs makes one group, which is what a grouped split keeps on one side")


open_exercise("01.5", "shortcut_test", "Open question: how would you show a model uses the calipers?")
