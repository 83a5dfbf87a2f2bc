"""Security helpers for consumers (C-64, C-65, C-89)."""
