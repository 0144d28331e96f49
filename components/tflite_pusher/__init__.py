"""Pushes a blessed device model to `<base>/<version>/model.tflite`, atomically."""
