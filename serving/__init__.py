"""A model server that speaks TensorFlow Serving's REST and gRPC APIs over its model layout.

`tensorflow_model_server` cannot be installed here, so dlforge serves the pushed SavedModels
(`<base_path>/<version>/`) itself, with the same URLs, protos, status codes and error bodies,
so that clients work unchanged against either server. This package imports `models` and
TensorFlow, never `pipelines`, `components`, TFX or KFP.
"""
