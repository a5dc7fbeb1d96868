"""Run migrations on the connection handed over by mlstack.db.migrate."""

from alembic import context

from mlstack.db.migrate import VERSION_TABLE
from mlstack.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
