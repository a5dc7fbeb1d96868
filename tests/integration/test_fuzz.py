"""Schema-driven fuzzing of every API endpoint, from the OpenAPI document a slot serves (schemathesis).

Cases valid by the schema and cases that break it (wrong types, missing and extra fields, bad JSON,
out-of-range numbers, odd media types) go to slot A over HTTP, gunicorn and all. Every answer must
be below 500, declared in the document for its operation, and every 4xx must name what is wrong
field by field ({"error", "message", "fields": {field: rule}}).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests
import sqlalchemy as sa

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the importorskip)

EXAMPLES = {"post": 220, "get": 10}  # per operation and generation mode: 3 POSTs × 2 × 220 = 1,320 cases


def _problem(case, response, declared: set[str]) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{status} (server error)"
    if str(status) not in declared:
        return f"{status} not declared ({sorted(declared)})"
    if 400 <= status < 500:
        try:
            body = response.json()
        except ValueError:
            return f"{status} without a JSON body: {response.text[:120]!r}"
        fields = body.get("fields") if isinstance(body, dict) else None
        if not (isinstance(body, dict) and body.get("error") and body.get("message")):
            return f"{status} without error/message: {body}"
        if not (isinstance(fields, dict) and fields and all(isinstance(v, str) and v for v in fields.values())):
            return f"{status} without field-level messages: {body}"
    return None


def _forget_generated_rows(url: str, since: datetime) -> None:
    """Drop the fuzzer's predictions (random but valid records) so later tests' drift checks do not see them."""
    time.sleep(2 * 0.5 + 1)  # the prediction log flushes every PREDICTION_FLUSH_SECONDS (0.5 s)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        ids = "SELECT prediction_id FROM predictions WHERE created_at >= :t"
        conn.execute(sa.text(f"DELETE FROM feedback WHERE prediction_id IN ({ids})"), {"t": since})
        conn.execute(sa.text("DELETE FROM predictions WHERE created_at >= :t"), {"t": since})
    engine.dispose()


def test_every_endpoint_survives_generated_cases_without_a_5xx(stack, native):
    base = f"http://127.0.0.1:{native.settings.BACKEND_A_PORT}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    document = requests.get(f"{base}/openapi.json", timeout=10).json()
    session = requests.Session()
    counts: Counter = Counter()
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/feedback", "/schema", "/model-info"}

    def fuzz(op, mode) -> None:
        declared = set(document["paths"][op.path][op.method.lower()]["responses"])

        @settings(max_examples=EXAMPLES[op.method.lower()], deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case):
            response = case.call(base_url=base, session=session, timeout=30)
            counts[(op.label, mode.value, response.status_code)] += 1
            if (problem := _problem(case, response, declared)) and len(problems) < 20:
                body = case.body if not isinstance(case.body, bytes) else case.body[:200]
                problems.append(f"{op.label} [{mode.value}] {problem}; sent {json.dumps(body, default=str)[:300]}"
                                f" as {case.media_type}")

        run()

    started = datetime.now(UTC)
    try:
        for op in operations:
            # a GET without parameters has nothing to break: negative cases exist only for the POSTs
            for mode in (schemathesis.GenerationMode if op.method.lower() == "post"
                         else [schemathesis.GenerationMode.POSITIVE]):
                fuzz(op, mode)
    finally:
        session.close()
        _forget_generated_rows(stack.app_db_url, started)
    total = sum(counts.values())
    by_status = Counter()
    for (label, _, status), n in counts.items():
        by_status[(label, status)] += n
    print(f"fuzzing: {total} cases; " + "; ".join(f"{label} {status}: {n}" for (label, status), n in sorted(by_status.items())))
    assert problems == []
    assert total >= 1000
    # both kinds of case reached the model: valid records were predicted, broken ones refused
    assert by_status[("POST /predict", 200)] > 50 and by_status[("POST /predict", 422)] > 50
    assert by_status[("POST /predict/batch", 200)] > 20
