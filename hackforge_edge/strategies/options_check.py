"""Range checks of the progressive / EWC / L2-SP settings (one line each, before any work)."""

from __future__ import annotations

import math
from typing import Any

from hackforge_edge.errors import UsageError


def check_transfer_options(opts: Any) -> None:
    """Raise UsageError naming every out-of-range progressive/ewc/l2sp setting of ``opts``."""
    problems = []
    ue = opts.unfreeze_every
    if isinstance(ue, bool) or not float(ue).is_integer() or int(ue) < 1:
        problems.append(f"--unfreeze-every must be a whole number of epochs >= 1, got {ue}")
    if not (math.isfinite(float(opts.lr_decay)) and float(opts.lr_decay) > 0):
        problems.append(f"--lr-decay must be > 0, got {opts.lr_decay}")
    for flag, value in (("--ewc-lambda", opts.ewc_lambda), ("--l2sp-alpha", opts.l2sp_alpha),
                        ("--l2sp-beta", opts.l2sp_beta)):
        if not (math.isfinite(float(value)) and float(value) >= 0):
            problems.append(f"{flag} must be >= 0, got {value}")
    if not 0.0 <= float(opts.ewc_gamma) <= 1.0:
        problems.append(f"--ewc-gamma must be in [0, 1], got {opts.ewc_gamma}")
    if problems:
        raise UsageError("; ".join(problems))
