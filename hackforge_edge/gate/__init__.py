"""Negative-transfer gate: shift statistics, transferability scores, a decision, an online monitor.

Submodules import numpy/scipy/scikit-learn/torch; this file imports nothing heavy.
"""
