"""The relational store: device registry, access control, audit, alert rules and history, dead letters."""
