"""Shared vocabulary every package may import: the data model, settings, store interfaces and errors."""
