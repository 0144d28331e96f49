"""PolicyTFLite: the TFLite model of a blessed policy, blessed when it acts like the SavedModel."""
