"""trainbot: Slack ChatOps for model training."""
