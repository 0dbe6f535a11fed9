"""Feasibility: the requirements a deployment must meet and the pure verdict function."""
