"""polyglot-iot ingestion: MQTT in; InfluxDB, MongoDB and PostgreSQL out."""
