"""Locust scenarios built from the data contract: people who open the form, get predictions (one or a
batch), and report the true value later. Each Locust user is one person with a stable id
(`X-User-Id`), so nginx keeps them on one arm of the A/B split.

    make loadtest USERS=50 SPAWN_RATE=10 DURATION=60s      # headless, reports in reports/loadtest*
    docker compose --profile loadtest up locust            # web UI on 127.0.0.1:${LOCUST_PORT}

Rows are the held-out rows of the contract's data set (no model trained on them); the feedback a
user sends is that row's true value, some seconds after the prediction, as in real life.
Environment: DATA_CONTRACT, DATA_PATH (as the stack), LOAD_FEEDBACK_DELAY (seconds, default 5),
LOAD_BATCH_ROWS (default 50), LOAD_THINK_SECONDS (mean pause between a user's actions, default 1).
"""

# Locust first: it monkey-patches the standard library (gevent) and anything importing requests or
# ssl before it ends in a RecursionError.
from locust import FastHttpUser, between, events, task  # isort: skip

import itertools
import os
import random
import time
from pathlib import Path

from mlstack.contracts import get_contract
from mlstack.simulator import holdout_rows

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = get_contract(os.environ.get("DATA_CONTRACT", "california_housing"))
DATA_PATH = Path(os.environ.get("DATA_PATH") or ROOT / "data" / "housing.csv")
if not DATA_PATH.is_absolute():
    DATA_PATH = ROOT / DATA_PATH
FEEDBACK_DELAY = float(os.environ.get("LOAD_FEEDBACK_DELAY", "5"))
BATCH_ROWS = int(os.environ.get("LOAD_BATCH_ROWS", "50"))
THINK = float(os.environ.get("LOAD_THINK_SECONDS", "1"))

_ROWS = holdout_rows(DATA_PATH, CONTRACT)
RECORDS = [{k: (None if v != v else v) for k, v in r.items()}  # NaN → null (the nullable field)
           for r in _ROWS[CONTRACT.feature_names].astype(object).to_dict("records")]
ACTUALS = _ROWS[CONTRACT.target.name].astype(float).tolist()
_ids = itertools.count(1)


def _check_prediction(resp, many: bool = False) -> dict | None:
    """Mark the request failed unless it is a 200 carrying what the contract promises."""
    if resp.status_code != 200:
        resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return None
    try:
        body = resp.json()
    except ValueError:
        resp.failure("not JSON")
        return None
    if many:
        if body.get("rejected"):
            resp.failure(f"rows rejected: {body['rejected'][:2]}")
            return None
    elif not body.get("prediction_id") or body.get("variant") not in ("A", "B"):
        resp.failure(f"no prediction_id/variant in {body}")
        return None
    resp.success()
    return body


class Person(FastHttpUser):
    """One person: opens the form, asks for prices, sometimes uploads a batch, reports true values later."""

    wait_time = between(0.5 * THINK, 1.5 * THINK)

    def on_start(self) -> None:
        self.user_id = f"load-user-{next(_ids)}"
        self.headers = {"X-User-Id": self.user_id, "Content-Type": "application/json"}
        self.rng = random.Random(self.user_id)
        self.owed: list[tuple[float, str, float]] = []  # (due, prediction_id, actual)
        self.variant: str | None = None

    @task(1)
    def browse_form(self) -> None:
        with self.client.get("/", headers={"X-User-Id": self.user_id}, name="/ (form)",
                             catch_response=True) as resp:
            if resp.status_code == 200 and 'name="' in resp.text:
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}: no form")

    @task(8)
    def predict(self) -> None:
        i = self.rng.randrange(len(RECORDS))
        with self.client.post("/api/predict", json=RECORDS[i], headers=self.headers, name="/api/predict",
                              catch_response=True) as resp:
            body = _check_prediction(resp)
        if body is None:
            return
        if self.variant is not None and body["variant"] != self.variant:
            # nginx pins a user to one arm: a change means stickiness broke (or an arm died, see backup)
            events.request.fire(request_type="CHECK", name="same variant for a user", response_time=0,
                                response_length=0, exception=AssertionError(
                                    f"{self.user_id}: {self.variant} then {body['variant']}"))
        self.variant = body["variant"]
        self.owed.append((time.monotonic() + FEEDBACK_DELAY, body["prediction_id"], ACTUALS[i]))

    @task(1)
    def predict_batch(self) -> None:
        rows = [RECORDS[self.rng.randrange(len(RECORDS))] for _ in range(BATCH_ROWS)]
        with self.client.post("/api/predict/batch", json={"records": rows}, headers=self.headers,
                              name=f"/api/predict/batch ({BATCH_ROWS} rows)", catch_response=True) as resp:
            _check_prediction(resp, many=True)

    @task(4)
    def report_true_value(self) -> None:
        now = time.monotonic()
        due = [o for o in self.owed if o[0] <= now]
        if not due:
            return
        self.owed = [o for o in self.owed if o[0] > now]
        for _, prediction_id, actual in due:
            with self.client.post("/api/feedback", json={"prediction_id": prediction_id, "actual": actual},
                                  headers=self.headers, name="/api/feedback", catch_response=True) as resp:
                if resp.status_code == 202:
                    resp.success()
                else:
                    resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
