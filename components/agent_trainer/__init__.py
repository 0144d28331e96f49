"""AgentTrainer: trains a reinforcement-learning agent and exports its policy as a Model."""
