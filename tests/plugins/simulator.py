"""Fixtures: simulator (filled in by its issue)."""
