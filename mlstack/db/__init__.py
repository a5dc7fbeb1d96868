"""The app database: the audit trail of model events (and, later, the prediction log)."""
