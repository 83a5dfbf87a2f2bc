"""Tests of the examples in examples/: they run for real, as a user would run them."""
