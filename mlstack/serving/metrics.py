"""Define the backend's Prometheus metrics (correct under gunicorn's multiprocess mode)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Buckets around a 50 ms latency SLO, fine below it (the compiled path answers in ~1 ms).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("mlstack_requests_total", "HTTP requests answered by a slot",
                   ["variant", "endpoint", "status"])
LATENCY = Histogram("mlstack_request_duration_seconds", "Time to answer a request inside the slot",
                    ["variant", "endpoint"], buckets=LATENCY_BUCKETS)
PREDICTIONS = Counter("mlstack_predictions_total", "Predictions served", ["variant", "model_version"])
FEEDBACK = Counter("mlstack_feedback_total", "Ground-truth values received", ["variant"])
MODEL_SWAPS = Counter("mlstack_model_swaps_total", "Models put into service", ["variant", "model_version"])
MODEL_REFUSED = Counter("mlstack_model_swaps_refused_total", "Model versions refused (load, verify or smoke test)",
                        ["variant"])
MODEL_INFO = Gauge("mlstack_model_version_info", "The model version a slot serves (1 = serving)",
                   ["variant", "model_version", "alias", "compiled"], multiprocess_mode="liveall")
LOG_PENDING = Gauge("mlstack_prediction_log_pending", "Records waiting for the database", ["variant"],
                    multiprocess_mode="livesum")
LOG_SPILLED = Counter("mlstack_prediction_log_spilled_total", "Records kept on disk while the database was down",
                      ["variant"])


def render(multiprocess_dir: object | None) -> tuple[bytes, str]:
    """Return the exposition text for all workers (multiprocess mode) or for this process."""
    if multiprocess_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
