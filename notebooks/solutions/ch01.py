"""Solutions to notebook 01's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 01.1
# Always answering "benign" is right on every benign image and wrong on every other one.
predicted_accuracy = 437 / (437 + 210 + 133)  # 0.56: the floor any model must beat

# %% 01.2
def label_conflicts(pairs):
    # a boolean mask, True where the two images of a pair carry different labels
    return pairs[pairs["class_a"] != pairs["class_b"]]

# %% 01.3
# 0.50-0.60: different scans that look alike; 0.60-0.70: a mix (same lesion in another frame, or two
# similar cysts); from 0.70 on: the same scan, re-cropped, rescaled or with calipers added.
same_scan_from = 0.7
