"""Solutions to notebook 05's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 05.1
# binomial: sd of the accuracy = sqrt(0.9 * 0.1 / n); on a laptop/paper fold of ~156 test images that is
# 0.024, and 95 % lies within about two of those: +-4.5 points (85.3 % to 94.2 %)
predicted_half_width = 0.045

# %% 05.2
# copies of one scan are right or wrong together; the image-level bootstrap counts them as independent
# evidence and comes out too narrow, resampling whole near-duplicate groups does not
predicted_ci = "wider"

# %% 05.3
def ensemble_accuracy(table):
    classes = ["p_benign", "p_malignant", "p_normal"]
    mean = table.groupby("file")[classes + ["y"]].mean()  # one row per image: the members' mean probabilities
    predicted = mean[classes].to_numpy().argmax(axis=1)  # the arg-max once, after averaging
    return float((predicted == mean["y"].to_numpy()).mean())

# %% 05.4
# decay lowers the rate in the same steps as switching, with one optimizer: the pair differs only in the switch
switch_effect = "switching - decay"

# %% 05.5
# choosing one of 50 epochs per fold on ~156 noisy test images is the biggest free lunch: the maximum of 50
# correlated noisy scores sits several points above the final epoch; the leakage gap of image-level folds is
# real but BUSI's near-duplicates touch only ~1 image in 4, and one seed or fold among a few adds less
# (augment_before_split is the other strong candidate: the check says which one this study measured)
predicted_rung = "test_epoch"
