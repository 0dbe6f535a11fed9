"""HTTP serving of an exported model: FastAPI + one onnxruntime session (no torch).

``create_app(model_path, providers=..., settings=...)`` builds the app; ``hf-edge serve`` runs it
under uvicorn. Names are resolved lazily so importing this package pulls in neither FastAPI
nor onnxruntime.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeSettings", "load_settings"]


def __getattr__(name: str):
    if name == "create_app":
        from hackforge_edge.serving.app import create_app

        return create_app
    if name in ("ServeSettings", "load_settings"):
        from hackforge_edge.serving import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
