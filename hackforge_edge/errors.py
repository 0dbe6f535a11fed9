"""One exception root for the whole toolkit.

``str(err)`` is a one-line message fit for a user. The CLI turns any ``HFEdgeError`` into that
line on stderr and a non-zero exit; the server turns it into a 4xx JSON body.
"""

from __future__ import annotations


class HFEdgeError(Exception):
    """Root of every error the toolkit raises on purpose (bad input, missing files, ...)."""

    exit_code = 2

    def __init__(self, message: str):
        # keep it one line whatever the caller passed
        super().__init__(" ".join(str(message).split()))


class UsageError(HFEdgeError):
    """A flag or argument is invalid (unknown name, out-of-range value)."""


class DataError(HFEdgeError):
    """The dataset is missing, malformed or unusable."""


class ModelError(HFEdgeError):
    """A model could not be built or loaded."""


class ExportError(HFEdgeError):
    """ONNX export, validation or quantisation failed."""


class BundleError(HFEdgeError):
    """A run bundle is missing, incomplete or would be overwritten."""


class ProfileError(HFEdgeError):
    """A hardware profile is unknown or invalid."""


class ModelFileError(HFEdgeError):
    """A model file (ONNX) is not readable or its inputs cannot be inferred."""


class RequirementsError(HFEdgeError):
    """A feasibility requirement is impossible (negative, zero) or malformed."""


class MeterError(HFEdgeError):
    """An energy meter or carbon setting is invalid."""


class ServingError(HFEdgeError):
    """A serving request or configuration is invalid."""
