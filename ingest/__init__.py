"""The ingestion pipeline: MQTT in, decode and route, batched writes to the stores, spool and acknowledgements."""
