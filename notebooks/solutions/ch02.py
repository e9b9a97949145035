"""Solutions to notebook 02's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 02.1
# 20 % of the images go to test and ~68 % to train, independently of each other: a pair straddles train
# and test with probability ~2 x 0.68 x 0.20 = 0.27, so BUSI's hundreds of pairs leak dozens.
predicted_leaks = "many"

# %% 02.2
def count_leaks(pairs, files, parts):
    part = dict(zip(files, parts))  # file -> "train" / "val" / "test"
    a = pairs["file_a"].map(part)   # the part of each pair's first image (NaN outside this profile's images)
    b = pairs["file_b"].map(part)
    leaked = ((a == "train") & (b == "test")) | ((a == "test") & (b == "train"))  # either order
    return int(leaked.sum())

# %% 02.3
def normalize(x, mean, std):
    # float first (uint8 arithmetic would wrap), then the 0..1 scale the statistics live on
    return (x.float() / 255 - mean) / std

# %% 02.4
def training_stats(images, parts):
    # only the training images: validation and test pixels must not shape the model
    train = images[torch.from_numpy(parts == "train")].float() / 255
    return float(train.mean()), float(train.std())

# %% 02.5
# Depth is the vertical axis (skin on top, shadows below a lesion): an upside-down scan does not exist.
never_happens = "vertical flip"

# %% 02.6
resize_argument = """
Squashing keeps every pixel of the scan and distorts shapes the same way in training and test, so the
model learns on the distortion it is tested on; padding spends part of a 64 px input on black bars and
shrinks the lesion further; a centre crop can cut off lesions near the edge. I would squash, and check the
choice by measuring it: train the same arm with each of the three on the same folds and seeds and compare
the validation scores, and look at how often a centre crop cuts into a lesion mask.
"""
