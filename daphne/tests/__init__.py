"""Daphne 1.4's in-process test helpers and tests, kept as the spec requires (D-53..D-58)."""
