"""Solutions to notebook 04's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 04.1
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

# %% 04.2
# read off the table: the first 'SGD + momentum' row of `switching`; with our untuned defaults
# (switch after 30 % of 50 epochs) its range starts at epoch 16 -- a tuned profile may differ
first_sgd_epoch = 16

# %% 04.3
# only `switching` creates a fresh optimizer mid-run, and its first SGD phase starts at a large rate
predicted_worst_start = "switching"
