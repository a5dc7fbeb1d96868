"""The MLflow model registry: connection, alias moves with their audit trail, and policy."""
