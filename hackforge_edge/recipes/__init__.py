"""The flows: short recipes that compose the stages (train-and-export, profile, ...).

Each recipe takes a resolved config and returns where it wrote its results; the CLI is a
thin layer over these, and nothing here imports the CLI.
"""
