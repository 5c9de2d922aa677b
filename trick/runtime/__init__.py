"""The runtime: executing a TrainingPlan (data, training, checkpoints, reports)."""
