"""Solutions to notebook 04's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 04.1
# read off the table: the first `switching` row that is not Adam, and the first epoch of its range
# (under the recorded class run that is epoch 5, under laptop epoch 12: the switch points are shares of
# the run, and tuning moves them)
sgd_rows = table[(table["schedule"] == "switching") & (table["optimizer"] != "Adam")]
first_sgd_epoch = int(sgd_rows["epochs"].iloc[0].split("-")[0])

# %% 04.2
def next_optimizer(phase, previous, optimizer, model):
    if optimizer is None or previous is None or previous.optimizer != phase.optimizer:
        # the switch: a new optimizer -- Adam's moment estimates and SGD's momentum belong to the old one
        if phase.optimizer == "adam":
            return torch.optim.Adam(model.parameters(), lr=phase.lr, weight_decay=phase.weight_decay)
        return torch.optim.SGD(model.parameters(), lr=phase.lr, momentum=phase.momentum,
                               weight_decay=phase.weight_decay)
    for g in optimizer.param_groups:  # same optimizer, a rate step (the `decay` arm): keep its state
        g["lr"], g["weight_decay"] = phase.lr, phase.weight_decay
    return optimizer

# %% 04.3
# only `switching` creates a fresh optimizer mid-run, and its SGD phases start at a rate chosen for Adam's
# scale. (With tuned rates and warm-ups no phase start may blow up at all: then the ranking is noise.)
predicted_worst_start = "switching"

# %% 04.4
other_explanations = """
Annealing: switching also lowers the rate, and a constant rate that is never lowered ends noisier -- the
decay arm (same rate steps, one optimizer) measures that part. Untuned rates: a constant rate nobody tuned
is a strawman -- give every arm the same tuning budget on validation images. Luck: one fold and one seed
move accuracy by several points -- repeat over folds and seeds and pair the comparison. Leakage and
selection: a random split with near-duplicates, or an epoch chosen on test images, inflates whichever arm
benefits -- split by group and keep the final weights.
"""
