"""Progressive rollout of a model version to an online endpoint, with automatic rollback."""
