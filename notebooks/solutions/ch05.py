"""Solutions to notebook 05's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 05.1
# binomial: sd of the accuracy = sqrt(0.9 * 0.1 / n); on a fold of ~156 test images (class and laptop)
# that is 0.024, and 95 % lies within about two of those: +-4.5 points (85.3 % to 94.2 %)
predicted_half_width = 0.045

# %% 05.2
# copies of one scan are right or wrong together; the image-level bootstrap counts them as independent
# evidence and comes out too narrow, resampling whole near-duplicate groups does not
predicted_ci = "wider"

# %% 05.3
def choose_threshold(p, is_malignant, sensitivity=0.9):
    scores = np.sort(p[is_malignant])[::-1]          # the malignant images' scores, highest first
    must_find = math.ceil(sensitivity * len(scores))  # how many of them the rule has to catch
    # calling "malignant" when p >= the must_find-th highest score catches exactly those (ties: more);
    # any higher threshold would miss one of them
    threshold = scores[must_find - 1]
    return float(threshold)

# %% 05.4
# `matched` runs switching's own phases with Adam throughout: the pair differs only in the switch
switch_effect = "switching - matched"

# %% 05.5
def ensemble_accuracy(table):
    classes = ["p_benign", "p_malignant", "p_normal"]
    mean = table.groupby("file")[classes + ["y"]].mean()  # one row per image: the members' mean probabilities
    predicted = mean[classes].to_numpy().argmax(axis=1)  # the arg-max once, after averaging
    return float((predicted == mean["y"].to_numpy()).mean())

# %% 05.6
# each choice reports the maximum of several noisy test scores: 18-50 epochs, 2-3 seeds, 5 folds of ~150
# images, each worth several points of noise -- three maxima stacked climb further than the leak of
# near-duplicates, which touch only part of the test images (class and laptop: about 6-7 points vs 1-2)
predicted_bigger = "choices"

# %% 05.7
no_effect_reply = """
"The CI includes zero" says the study could not tell the difference from zero, not that the difference is
zero. Read it with the smallest difference the design detects with 80 % power: if that is, say, 6 points,
a true effect of 3 points would usually be missed, so "switching does nothing" is not shown -- only
"switching does not add as much as the paper's 9 points" may be, if 9 lies outside the CI. To say more,
the study needs more folds, partitions or images, and the claim should name the size it can rule out.
"""
