"""The notifier: webhooks and e-mail about executions, delivered apart from everything else."""
