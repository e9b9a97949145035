"""Every figure the notebooks show. One file per chapter group, re-exported here so a notebook
writes ``from bcdet_helpers import plots; plots.class_balance(index)``.

Each function takes data, draws with matplotlib/seaborn, returns the ``Figure`` and never calls
``plt.show()`` (Jupyter shows a returned figure; scripts save it with :func:`save`).
"""
from pathlib import Path

from .data import *  # noqa: F401,F403  chapters 01-02
from .model import *  # noqa: F401,F403  chapter 03
from .training import *  # noqa: F401,F403  chapter 04
from .evaluation import *  # noqa: F401,F403  chapter 05
from .ladders import *  # noqa: F401,F403  chapter 05's ladders


def save(fig, folder, name: str, dpi: int = 120) -> Path:
    """Save ``fig`` as ``folder/name.png`` (folder created) and return the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
