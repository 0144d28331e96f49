"""TFX's Tuner, keeping the TensorBoard logs of every trial in its `tuner_results` artifact."""
