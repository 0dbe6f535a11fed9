"""Transfer strategies: a registry of named strategies (``registry.STRATEGIES``) with parameter accounting."""
