"""Sparkplug B (Eclipse Sparkplug 3.0): topics, payloads, and the host application's state."""

from ingest.decoding.sparkplug.rule import SPARKPLUG_RULE_FACTORY, SUBSCRIPTIONS, SparkplugRule, sparkplug_rules

__all__ = ["SPARKPLUG_RULE_FACTORY", "SUBSCRIPTIONS", "SparkplugRule", "sparkplug_rules"]
