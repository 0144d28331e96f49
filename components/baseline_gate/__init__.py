"""Blesses a forecaster only if it beats the seasonal-naive forecast on the test split."""
