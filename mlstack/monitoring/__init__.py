"""Monitoring: results pushed to the Prometheus Pushgateway, and data-drift checks."""
