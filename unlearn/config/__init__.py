"""Configuration: the typed schema, loading YAML files and overrides, and every check on the result."""
