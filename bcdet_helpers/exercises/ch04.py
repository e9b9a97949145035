"""Chapter 04 (training and switching optimizers): read the phase table, complete the switch (the
chapter's real coding task), predict which phase start hurts most, and an open question."""
from __future__ import annotations

from .core import NotAnswered, choice, exercise, hint, number, open_exercise


@exercise("04.2", answer="next_optimizer", title="Complete the switch: the optimizer a new phase starts with",
          kind="code")
def complete_the_switch(function, *, loop, data, profile):
    """``loop``: the notebook's ``train_by_hand``; ``data``: its SplitData; ``profile``: its Profile.

    Runs the hand-written loop with the student's ``next_optimizer`` for two epochs of a schedule that
    switches after each (Adam -> SGD), and ``fit`` for the same two epochs, same seed; the histories
    must agree."""
    import numpy as np
    import torch

    from ..model import build_model
    from ..profiles import Phase
    from ..train import fit

    if not callable(function):
        hint("define a function: def next_optimizer(phase, previous, optimizer, model): ...")
    phases = [Phase("adam", 1e-3, 1, warmup=0.5), Phase("sgd", 1e-2, 1, warmup=0.5)]
    probe = function(phases[0], None, None, build_model(profile))
    if probe is None:
        raise NotAnswered
    if not isinstance(probe, torch.optim.Optimizer):
        hint(f"return a torch.optim optimizer, not a {type(probe).__name__}")
    if not isinstance(probe, torch.optim.Adam):
        hint("the first phase here is an Adam phase: which class in torch.optim is that?")
    torch.manual_seed(0)
    mine = loop(build_model(profile), data, phases, function, seed=0)
    torch.manual_seed(0)
    ref = fit(build_model(profile), data, phases, batch_size=profile.batch_size, seed=0, device="cpu",
              augment=profile.augmentation, progress=False).history
    if list(mine["optimizer"]) != list(ref["optimizer"]):
        hint(f"your loop ran {list(mine['optimizer'])}, fit ran {list(ref['optimizer'])}")
    if not np.allclose(mine["train_loss"].iloc[0], ref["train_loss"].iloc[0], rtol=1e-4):
        hint("the first epoch (Adam) already differs from fit: which of the phase's fields does a new Adam need?")
    if not np.allclose(mine["train_loss"], ref["train_loss"], rtol=1e-4) or \
            not np.allclose(mine["val_loss"], ref["val_loss"], rtol=1e-4):
        hint("the SGD epoch differs from fit: at a switch the loop needs a *new* optimizer of the phase's kind -- "
             "does yours get every field of the phase that SGD uses (print the phase to see them)?")
    same, model = [Phase("adam", 1e-3, 1), Phase("adam", 1e-4, 1)], build_model(profile)
    first = function(same[0], None, None, model)
    kept = function(same[1], same[0], first, model)
    if kept is not first:
        hint("when the optimizer stays the same (Adam -> Adam, the `decay` arm), should its running averages be "
             "thrown away? Return the optimizer you were given")
    if kept.param_groups[0]["lr"] != 1e-4:
        hint("you kept the optimizer at a rate step, but it still runs at the old rate: where does an "
             "optimizer keep its rate (print optimizer.param_groups)?")
    return (f"your loop matches fit for two epochs (train loss {mine['train_loss'].iloc[1]:.4f} vs "
            f"{ref['train_loss'].iloc[1]:.4f} in the SGD epoch): this is the paper's method, all of it")


@exercise("04.1", answer="first_sgd_epoch", title="Read the phase table: when does `switching` first use SGD?",
          kind="read")
def first_sgd_epoch(answer, *, table):
    """``table``: the notebook's phase table (``train.phase_table``) for this profile."""
    rows = table[(table["schedule"] == "switching") & (table["optimizer"] != "Adam")]
    truth = int(str(rows["epochs"].iloc[0]).split("-")[0])
    value = number(answer)
    if value == truth - 1:
        hint("epochs in the table are counted from 1 and the range is inclusive: the first SGD epoch is the "
             "first number of the SGD phase's range")
    if value != truth:
        hint("find the first `switching` row whose optimizer is not Adam; its `epochs` column says when it runs")
    return f"epoch {truth}: the first switch, where a fresh SGD meets a model Adam has trained"


TIE = 0.05  # ratios this close to the largest count as the largest (epoch-to-epoch noise)
STABLE = 1.25  # no phase start rose the loss by more than a quarter


@exercise("04.3", answer="predicted_worst_start", title="Predict: which arm's phase start raises the loss most?")
def worst_phase_start(answer, *, ratios):
    """``ratios``: ``{arm: largest peak/entry training-loss ratio over its phases}`` as measured."""
    guess = choice(answer, tuple(ratios))
    truth = max(ratios, key=ratios.get)
    measured = (f"measured: {truth} (ratio {ratios[truth]:.2f}); " +
                ", ".join(f"{a} {r:.2f}" for a, r in ratios.items() if a != truth))
    if ratios[truth] <= STABLE:  # no phase start hurt: which ratio is largest is noise, any answer stands
        return (measured + f". Every arm stayed below {STABLE:g}: no phase start blew up in this run, so the "
                "ranking is noise -- the tuned rates and the warm-ups did their job. Your reason matters more "
                "than your pick: which arm would have been the risk, and why?")
    if ratios[truth] - ratios[guess] > TIE:  # not within noise of the largest
        hint("a phase start hurts when a *fresh* optimizer meets a trained model at a large rate: which arm "
             "creates new optimizers mid-run, and with which optimizer and rate?")
    return measured


open_exercise("04.4", "other_explanations", "Open question: what else could produce the paper's gap?")
