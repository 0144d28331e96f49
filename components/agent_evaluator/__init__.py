"""AgentEvaluator: plays seeded episodes with an exported policy and blesses it or not."""
