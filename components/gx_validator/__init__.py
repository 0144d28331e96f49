"""Validates each split of the examples with a Great Expectations suite."""
