"""Pushes a blessed model into TF Serving's directory layout, atomically."""
