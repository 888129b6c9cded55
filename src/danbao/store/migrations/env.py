"""Alembic environment: danbao always passes its own connection; nothing is read from ini."""

from alembic import context

from danbao.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
