"""Custom TFX components: `component.py` declares the interface, `executor.py` does the work."""
