"""Alembic migrations for the registry schema (run via ``iot registry migrate``)."""
