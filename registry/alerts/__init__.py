"""Alert rules, the engine that evaluates them on the stream, and the alert history they write."""
