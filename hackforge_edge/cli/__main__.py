"""``python -m hackforge_edge.cli`` == ``hf-edge``."""

import sys

from hackforge_edge.cli import main

sys.exit(main())
