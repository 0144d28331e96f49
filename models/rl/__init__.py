"""Reinforcement learning: gymnasium environments, agents (tabular Q-learning, DQN,
REINFORCE with a baseline, advantage actor-critic), their KerasTuner search, and the export of a
policy as a SavedModel with the same serving contract for every agent.

Each agent module (`qlearning`, `dqn`, `reinforce`, `actor_critic`) meets the family surface of
`models.families` over an `environments.EnvironmentSpec` in place of a `TaskSpec`, and adds
`train(spec, *, episodes, seed, hyperparameters, ...) -> TrainingResult`.
"""
