"""One Rich console factory for every command."""

from __future__ import annotations

import os
import sys


def make_console(**kwargs):
    """A Rich Console; when stdout is not a terminal (pipes, CI logs) tables get 160 columns
    instead of Rich's 80, so wide tables stay readable. COLUMNS still wins when set."""
    from rich.console import Console

    if "width" not in kwargs and not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        kwargs["width"] = 160
    return Console(**kwargs)
