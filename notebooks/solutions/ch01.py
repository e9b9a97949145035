"""Solutions to notebook 01's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 01.1
# Always answering "benign" is right on every benign image and wrong on every other one.
predicted_accuracy = 437 / (437 + 210 + 133)  # 0.56: the floor any model must beat

# %% 01.2
# 0.50-0.60: different scans that look alike; 0.60-0.70: a mix (same lesion in another frame, or two
# similar cysts); from 0.70 on: the same scan, re-cropped, rescaled or with calipers added.
same_scan_from = 0.7

# %% 01.3
def label_conflicts(pairs):
    # a boolean mask, True where the two images of a pair carry different labels
    return pairs[pairs["class_a"] != pairs["class_b"]]

# %% 01.4
def group_ids(files, pairs):
    # union-find: every file starts as its own group; each pair merges the groups of its two files
    parent = {f: f for f in files}

    def root(f):
        while parent[f] != f:
            parent[f] = parent[parent[f]]  # path halving keeps the chains short
            f = parent[f]
        return f

    for a, b in zip(pairs["file_a"], pairs["file_b"]):
        if a in parent and b in parent:  # a pair may name an image outside this profile's subset
            parent[root(a)] = root(b)
    return [root(f) for f in files]  # a chain a-b, b-c ends in one root: one group

# %% 01.5
shortcut_test = """
Compare the model on lesion images with and without burned-in marks (the index's text_or_calipers flag):
if recall drops sharply on unmarked lesions, the marks carry part of the decision. Stronger: take marked
test images, paint the calipers and text out (or crop them away) and see how many predictions change --
a model that reads tissue barely changes. Grad-CAM (chapter 05) helps, but only as a pointer: heat on a
caliper cross is a warning, heat on the lesion is not proof.
"""
