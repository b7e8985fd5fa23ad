"""Alembic environment: runs online against the engine passed in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from registry.db import make_engine
from registry.models import Base
from registry.notify import models as notify_models  # noqa: F401  (its tables join Base.metadata)

config = context.config
target_metadata = Base.metadata


def run() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no engine or sqlalchemy.url given to the migration environment")
        engine = make_engine(url)
    with engine.begin() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=conn.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run()
