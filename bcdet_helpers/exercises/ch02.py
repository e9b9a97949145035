"""Chapter 02 (from PNG to tensors): a prediction, two functions to complete and a figure to read."""
from __future__ import annotations

from .core import call, choice, exercise, hint


def _bucket(n: int) -> str:
    return "none" if n == 0 else "a few" if n < 10 else "many"


@exercise("02.1", answer="predicted_leaks", title="Predict how many duplicate pairs a random split leaks")
def random_split_leaks(answer, *, leaked):
    """``leaked``: train-test pairs the random split leaked in this run (``leaks["random"]["train-test"]``)."""
    guess = choice(answer, ("none", "a few", "many"))
    truth = _bucket(int(leaked))
    if guess != truth:
        hint(f"this run measured {int(leaked)} train-test pairs for the random split. A random split ignores "
             "groups, so each pair's two images land in train and test independently -- how often does that "
             "happen with 70 % train and 15 % test?")
    return f"{int(leaked)} leaked train-test pairs ('{truth}'); the grouped split leaks none by construction"


@exercise("02.2", answer="normalize", title="Write normalize(x, mean, std)")
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
    hint("compute (x / 255 - mean) / std on a float copy of x")


@exercise("02.3", answer="training_stats", title="Write training_stats(images, split)")
def training_stats(function, *, data):
    """``data``: the SplitData of the notebook (images, split, and the statistics it computed)."""
    got = call(function, data.images, data.split)
    try:
        mean, std = (float(v) for v in got)
    except (TypeError, ValueError):
        hint("return two numbers: (mean, std)")
    if mean > 1.5:
        hint("these are 0..255 values; the statistics live on the 0..1 scale (divide by 255)")
    all_pixels = data.images.float() / 255
    if abs(mean - data.mean) > 1e-4:
        if abs(mean - float(all_pixels.mean())) < 1e-5:
            hint("that is the mean of *all* images, test images included; keep the rows where split == 'train'")
        hint("keep the images whose split is 'train', convert them to float on the 0..1 scale, then take "
             ".mean() over every pixel")
    if abs(std - data.std) > 1e-3:
        hint("the mean is right; the std is not -- take .std() over the same training pixels")
    return f"mean {mean:.4f}, std {std:.4f}: exactly what load_split_data stored, with no test pixel involved"


@exercise("02.4", answer="never_happens", title="Read the augmentation grid: which change never happens?")
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
