"""The backend's metric helpers: contract-driven buckets and the bulk observe."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from mlstack.serving.metrics import observe_many, value_buckets


def test_buckets_follow_the_contract_target_range(contract):
    predicted, errors = value_buckets(contract)
    assert predicted[-1] == contract.target.maximum and len(predicted) == 10
    assert list(predicted) == sorted(predicted) and list(errors) == sorted(errors)
    assert errors[-1] == contract.target.maximum - contract.target.minimum


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_bulk_observe_equals_one_by_one():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-1, 12, 5000), [0.0, 1.0, 2.0, 5.0, 10.0, np.inf]])  # on the edges too
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "x", buckets=(1, 2, 5, 10), registry=one)
    h2 = Histogram("h", "x", buckets=(1, 2, 5, 10), registry=many)
    for v in values:
        h1.observe(float(v))
    observe_many(h2, values)
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("h_created")]  # noqa: E731
    assert strip(_text(one)) == strip(_text(many))


def test_bulk_observe_of_nothing_changes_nothing():
    reg = CollectorRegistry()
    h = Histogram("h", "x", buckets=(1,), registry=reg)
    observe_many(h, [])
    assert 'h_count 0.0' in _text(reg)
