"""Data: synthetic histopathology-like domains, image folders, seeded splits, preprocessing.

numpy only, no torch. Nothing is imported here: ``serving`` imports ``data.preprocess`` alone.
"""
