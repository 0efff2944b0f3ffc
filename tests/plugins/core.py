"""Fixtures: core (filled in by its issue)."""
