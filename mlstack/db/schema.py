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
)
sa.Index("ix_predictions_created_at", predictions.c.created_at)
sa.Index("ix_predictions_variant_created_at", predictions.c.variant, predictions.c.created_at)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("prediction_id", sa.String(64), primary_key=True),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_feedback_received_at", feedback.c.received_at)
