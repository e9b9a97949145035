"""Solutions to notebook 02's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 02.1
# 20 % of the images go to test and ~68 % to train, independently: a pair straddles train and test with
# probability ~2 x 0.68 x 0.20 = 0.27, so BUSI's hundreds of pairs leak dozens.
predicted_leaks = "many"

# %% 02.2
def normalize(x, mean, std):
    # float first (uint8 arithmetic would wrap), then the 0..1 scale the statistics live on
    return (x.float() / 255 - mean) / std

# %% 02.3
def training_stats(images, split):
    # only the training images: validation and test pixels must not shape the model
    train = images[torch.from_numpy(split == "train")].float() / 255
    return float(train.mean()), float(train.std())

# %% 02.4
# Depth is the vertical axis (skin on top, shadows below a lesion): an upside-down scan does not exist.
never_happens = "vertical flip"
