"""Simulated device fleets: deterministic message plans, faults, and a manifest of what was sent."""
