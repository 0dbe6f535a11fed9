"""Running an ONNX model: one onnxruntime session factory (``session.make_session``) and one
way to time calls and summarise them (``timing.time_calls``, ``timing.percentile``).

Used by export validation, local measurement, calibration, serving and the benchmarks. Only
numpy and onnxruntime are needed (the serving image has no torch or scipy).
"""
