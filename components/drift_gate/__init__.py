"""Stops a run whose data drifted from the previous span or is skewed between its splits."""
