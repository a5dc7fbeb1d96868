"""Train, evaluate and register models: functions that run with or without Airflow."""
