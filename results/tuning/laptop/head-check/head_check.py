"""Does ResNet9's logit scale decide whether the switch from Adam to SGD blows up? (issue #13)

    BCDET_DATA=/path/to/Dataset_BUSI_with_GT python head_check.py SCALE SGD_LR

Laptop profile, grouped fold 0, seed 0, one torch thread: Adam at 1e-3 for 6 epochs, then SGD at
SGD_LR for 4 (warm-up 0.5 epoch each, weight decay 5e-5), with the logits multiplied by SCALE.
Prints the training losses, validation accuracies and each phase's peak/entry loss ratio.
(output.txt was produced by the same steps with the scale appended to the head as a module, before
``Profile.logit_scale`` existed; the arithmetic is the same.)
"""
import dataclasses
import sys

import torch

from bcdet_helpers import train
from bcdet_helpers.data import load_split_data
from bcdet_helpers.model import build_model
from bcdet_helpers.profiles import Phase, get_profile

torch.set_num_threads(1)
scale, sgd_lr = float(sys.argv[1]), float(sys.argv[2])
prof = dataclasses.replace(get_profile("laptop"), logit_scale=scale)
data = load_split_data(prof, split="grouped", seed=0, fold=0)
phases = [Phase("adam", 1e-3, 6, weight_decay=5e-5, warmup=0.5), Phase("sgd", sgd_lr, 4, weight_decay=5e-5, warmup=0.5)]
torch.manual_seed(0)
model = build_model(prof)
res = train.fit(model, data, phases, batch_size=128, seed=0, device="cpu", augment=prof.augmentation, progress=False)
h = res.history
print(f"scale {scale} sgd_lr {sgd_lr}: train_loss", [round(x, 2) for x in h.train_loss],
      "val_acc", [round(x, 2) for x in h.val_acc], train.phase_stability(h), flush=True)
