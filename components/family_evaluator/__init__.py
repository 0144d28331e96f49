"""FamilyEvaluator: judges generative and language models by their own metric."""
