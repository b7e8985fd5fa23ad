"""The relational store: device registry, access control, alert history, dead letters."""
