"""Models used by the channels tests (data binding, delay)."""
