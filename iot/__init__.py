"""The application on top: the ``iot`` command and the wiring that composes ingest, registry and simulators."""
