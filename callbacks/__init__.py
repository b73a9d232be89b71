"""Lightning callbacks of `unlearn`, installed as ``unlearn.callbacks``."""
