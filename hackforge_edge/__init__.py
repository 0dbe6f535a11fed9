"""hackforge-edge: transfer-learn, export to ONNX, and judge edge-hardware fit.

Kept tiny on purpose: importing the package must not import torch (``hf-edge --help`` is fast).
"""

__version__ = "0.1.0"

from hackforge_edge.errors import HFEdgeError  # noqa: E402  (light: no third-party imports)

__all__ = ["__version__", "HFEdgeError"]
