"""Published reference points: numbers from papers, cited -- never our measurements.

Notebook 05 and ``report.md`` set our results beside them: the paper's two claims (the comparison
we reproduce) and MedMNIST's BreastMNIST baseline, which is a *different*, binary task built from
BUSI and is there for context only. Each entry says where it comes from and what it is not.
"""
from __future__ import annotations

PUBLISHED = {
    "paper_switching": {
        "source": "Achyuthanwesh et al., switching Adam/SGD + LR",
        "task": "3 classes, BUSI, 64 x 64",
        "accuracy": 0.90,
        "note": "as claimed (~90%); split, seeds and number of runs not stated",
    },
    "paper_constant": {
        "source": "Achyuthanwesh et al., constant optimizer + LR",
        "task": "3 classes, BUSI, 64 x 64",
        "accuracy": 0.81,
        "note": "as claimed (~81%); split, seeds and number of runs not stated",
    },
    "breastmnist_resnet18": {
        "source": "MedMNIST v2 BreastMNIST, ResNet-18 (28)",
        "task": "2 classes (malignant vs benign+normal), BUSI at 28 x 28",
        "accuracy": 0.863,
        "auc": 0.901,
        "note": "a DIFFERENT, binary task built from BUSI (Yang et al., Sci. Data 2023) -- context, not a like-for-like comparison",
    },
}
