"""The reward model and active-learning selection: which pairs are worth a person's time."""
