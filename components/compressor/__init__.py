"""Turns a blessed SavedModel into the smallest TFLite model within an accuracy budget."""
