"""Stops a run whose data ExampleValidator found anomalies in."""
