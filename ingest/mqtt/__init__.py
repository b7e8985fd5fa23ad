"""The project's own MQTT consumer core: a pure packet codec and a blocking subscribe-only session."""
