"""Training: the seeded loop and evaluation (``loop``), metrics, and the default recipe (``defaults``)."""
