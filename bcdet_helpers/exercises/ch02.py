"""Chapter 02 (from PNG to tensors): a prediction, the leak counter behind it (the chapter's real coding
task), two short functions, a figure to read and an open question."""
from __future__ import annotations

from .core import call, choice, exercise, hint, open_exercise


def _bucket(n: int) -> str:
    return "none" if n == 0 else "a few" if n < 10 else "many"


@exercise("02.1", answer="predicted_leaks", title="Predict how many duplicate pairs a random split leaks")
def random_split_leaks(answer, *, leaked):
    """``leaked``: train-test pairs the random split leaked in this run (``leaks["random"]["train-test"]``)."""
    guess = choice(answer, ("none", "a few", "many"))
    truth = _bucket(int(leaked))
    if guess != truth:
        hint(f"this run measured {int(leaked)} train-test pairs for the random split. A random split places the "
             "two images of a pair independently: with the part sizes printed above, how likely is a pair to "
             "straddle train and test -- and how many pairs are there?")
    return f"{int(leaked)} leaked train-test pairs ('{truth}'); the grouped split leaks none by construction"


def _toy_split():
    import pandas as pd

    files = ["a", "b", "c", "d", "e", "f", "g"]
    parts = ["train", "test", "train", "val", "test", "train", "test"]
    pairs = pd.DataFrame({"file_a": ["a", "c", "b", "d", "e", "a"], "file_b": ["b", "f", "e", "a", "c", "zz"],
                          "class_a": ["benign"] * 6, "class_b": ["benign"] * 6, "similarity": [0.9] * 6})
    return files, parts, pairs  # a-b, e-c: train-test (both orders); c-f train-train; b-e test-test; d-a val-train


@exercise("02.2", answer="count_leaks", title="Write count_leaks(pairs, files, parts)", kind="code")
def count_leaks(function, *, pairs=None, files=None, parts=None):
    """``pairs``: near-duplicate pairs; ``files``/``parts``: every image of the profile and its part
    (the random split of the notebook). The student's function returns how many pairs have one image in
    train and the other in test -- what ``split.leaked_pairs`` counts."""
    import numpy as np
    import pandas as pd

    from ..data.split import leaked_pairs

    cases = [(*_toy_split(), "a seven-file example")]
    if pairs is not None and files is not None and parts is not None:
        cases.append((list(files), list(np.asarray(parts)), pairs, "this notebook's random split"))
    for fs, sp, ps, name in cases:
        want = leaked_pairs(ps, pd.DataFrame({"file": fs}), np.asarray(sp), ("train", "test"))
        got = call(function, ps.copy(), list(fs), np.asarray(sp))
        try:
            got = int(got)
        except (TypeError, ValueError):
            hint(f"return a number of pairs, not a {type(got).__name__}")
        if got == want:
            continue
        where = dict(zip(fs, sp))
        a, b = ps["file_a"].map(where), ps["file_b"].map(where)
        if got in (int(((a == "train") & (b == "test")).sum()), int(((a == "test") & (b == "train")).sum())):
            hint(f"on {name} you counted {got}, expected {want}: does it matter which image of a pair was "
                 "written down first?")
        if got == int((a.notna() & b.notna() & (a != b)).sum()):
            hint(f"on {name} you counted every pair that straddles two parts ({got}); which two parts does the "
                 "question ask about?")
        hint(f"on {name} you counted {got}, expected {want}: you need the part of *both* images of each pair")
    return f"{want} pair(s) with one image in train and the other in test on {name}: the same as split.leaked_pairs"


@exercise("02.3", answer="normalize", title="Write normalize(x, mean, std)", kind="code")
def normalize(function):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8, generator=g)
    mean, std = 0.31, 0.22
    got = call(function, x.clone(), mean, std)
    if not isinstance(got, torch.Tensor):
        hint(f"return a tensor, not a {type(got).__name__}")
    if not got.is_floating_point():
        hint("the result is still an integer tensor: convert with x.float() before dividing")
    want = (x.float() / 255 - mean) / std
    if got.shape != want.shape:
        hint(f"the shape changed from {tuple(x.shape)} to {tuple(got.shape)}; normalisation works pixel by pixel")
    if torch.allclose(got, want, atol=1e-4):
        return "the same as SplitData.normalize: training pixels now have mean 0 and std 1"
    if torch.allclose(got, (x.float() - mean) / std, atol=1e-3):
        hint("mean and std are on the 0..1 scale; bring the pixels there first (divide by 255)")
    if torch.allclose(got, x.float() / 255 - mean, atol=1e-4):
        hint("you subtracted the mean; now divide by the std")
    if torch.allclose(got, x.float() / 255 / std - mean, atol=1e-4):
        hint("subtract the mean first, then divide by the std (brackets)")
    hint("the network's input has mean 0 and std 1 on the training pixels: which two operations, in which "
         "order, on which scale?")


@exercise("02.4", answer="training_stats", title="Write training_stats(images, parts)", kind="code")
def training_stats(function, *, data):
    """``data``: the SplitData of the notebook (images, parts, and the statistics it computed)."""
    got = call(function, data.images, data.parts)
    try:
        mean, std = (float(v) for v in got)
    except (TypeError, ValueError):
        hint("return two numbers: (mean, std)")
    if mean > 1.5:
        hint("these are 0..255 values; the statistics live on the 0..1 scale (divide by 255)")
    all_pixels = data.images.float() / 255
    if abs(mean - data.mean) > 1e-4:
        if abs(mean - float(all_pixels.mean())) < 1e-5:
            hint("that is the mean of *all* images, test images included; keep the rows where parts == 'train'")
        hint("your mean is neither the training images' nor all images': which rows of `images` are the "
             "training part, and on which scale do the statistics live?")
    if abs(std - data.std) > 1e-3:
        hint("the mean is right; the std is not -- take .std() over the same training pixels")
    return f"mean {mean:.4f}, std {std:.4f}: exactly what load_split_data stored, with no test pixel involved"


@exercise("02.5", answer="never_happens", title="Read the augmentation grid: which change never happens?",
          kind="read")
def augmentation_grid(answer, *, augment):
    """``augment``: the augmentation settings (``bcdet_helpers.data.augment.AUGMENT``)."""
    options = ("horizontal flip", "vertical flip", "rotation", "zoom")
    guess = choice(answer, options)
    present = {"horizontal flip": augment.get("hflip_p", 0) > 0, "vertical flip": augment.get("vflip_p", 0) > 0,
               "rotation": augment.get("degrees", 0) > 0, "zoom": tuple(augment.get("scale", (1, 1))) != (1, 1)}
    if present[guess]:
        hint(f"look at the twelve pictures again: some of them do show a {guess}. Where is the skin, "
             "and where is the acoustic shadow, in every one of them?")
    return "never upside down: depth is the vertical axis, and shadows fall below a lesion"


open_exercise("02.6", "resize_argument", "Open question: squash, pad or crop to a square?")
