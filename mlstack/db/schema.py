"""Declare the app database tables (SQLAlchemy Core); migrations in `migrations/` create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

model_events = sa.Table(
    "model_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(64), nullable=True),
    sa.Column("version_before", sa.String(32), nullable=True),
    sa.Column("version_after", sa.String(32), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False, unique=True),
)
sa.Index("ix_model_events_model_time", model_events.c.model_name, model_events.c.event_time)
# the judge's alias lookups, the status page's decisions and transitions: one action's newest rows
sa.Index("ix_model_events_model_action_id", model_events.c.model_name, model_events.c.action, model_events.c.id)

# Signed checkpoints of the audit chain: "rows up to event_id verified, the last one hashed row_hash".
# Verification starts at the newest checkpoint whose signature (HMAC with AUDIT_SIGNING_KEY) holds.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("signature", sa.String(64), nullable=False),
)

# Stretches of the chain archived to the bucket (expired judge ticks, mlstack.lifecycle): the rows whose
# chain began after prev_hash and ended with last_hash were removed; signed, so verification can step over.
audit_gaps = sa.Table(
    "audit_gaps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("first_id", sa.Integer, nullable=False),
    sa.Column("last_id", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("archive", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("signature", sa.String(64), nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("variant", sa.String(8), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("model_alias", sa.String(64), nullable=False),
    sa.Column("user_hash", sa.String(32), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("prediction", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    # shadow scoring: the other alias's model on the same record (not served), for paired comparisons
    sa.Column("shadow_version", sa.String(32), nullable=True),
    sa.Column("shadow_prediction", sa.Float, nullable=True),
)
sa.Index("ix_predictions_created_at", predictions.c.created_at)
sa.Index("ix_predictions_variant_created_at", predictions.c.variant, predictions.c.created_at)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    # who sent the label (hashes, never the raw id or address): the judge counts a few per sender
    sa.Column("sender_hash", sa.String(32), nullable=True),
    sa.Column("address_hash", sa.String(32), nullable=True),
)
sa.Index("ix_feedback_received_at", feedback.c.received_at)

# Latency thresholds request_stats counts answers over; the judge's latency SLO must be one of them.
SLOW_THRESHOLDS_MS = (50, 100, 250, 500, 1000)

request_stats = sa.Table(
    "request_stats",
    metadata,
    # One row per slot process, model version and flush period: inserted once (idempotent replay),
    # summed at query time.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("variant", sa.String(8), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    *(sa.Column(f"over_{ms}_ms", sa.Integer, nullable=False) for ms in SLOW_THRESHOLDS_MS),
    sa.Column("latency_ms_sum", sa.Float, nullable=False),
)
sa.Index("ix_request_stats_variant_period", request_stats.c.variant, request_stats.c.period_end)
# an arm's counts since its window began (mlstack.rollout.evidence.arm)
sa.Index("ix_request_stats_version_period", request_stats.c.model_version, request_stats.c.period_start)
# archive_history's expired hours (mlstack.lifecycle)
sa.Index("ix_request_stats_period_end", request_stats.c.period_end)
