"""Solutions to notebook 06's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 06.1
# another country, other scanners, other sonographers' settings and calipers: the model learnt BUSI's look along
# with the lesions, so it ranks another hospital's lesions less well (and its threshold shifts even more)
predicted_auc = "lower"

# %% 06.2
def carry_over(p_val, y_val, p_ext, y_ext, sensitivity=0.9):
    scores = np.sort(p_val[y_val])[::-1]               # malignant *validation* scores, highest first
    threshold = scores[math.ceil(sensitivity * len(scores)) - 1]  # the largest that still finds enough
    called = p_ext >= threshold                         # applied unchanged to the external images
    sens = called[y_ext].mean()                         # found among the malignant external images
    spec = (~called[~y_ext]).mean()                     # cleared among the benign ones
    return float(threshold), float(sens), float(spec)

# %% 06.3
clinic_needs = """
A screening clinic needs the sensitivity it will really get on its own scanners and patients, not BUSI's:
a prospective or at least local retrospective test on its own images with patient-level intervals, per
device, with the threshold fixed before looking at them (and re-chosen on a local validation set if the
carried-over one misses cancers). It also needs normal scans in the test (BUS-BRA has none), a comparison
with its radiologists, a plan for monitoring drift after a scanner change, and regulatory approval: this
is a teaching model, not a medical device.
"""
