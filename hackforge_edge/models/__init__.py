"""Models: the registry (``registry.create_model``) and the cached source-domain model (``source``)."""
