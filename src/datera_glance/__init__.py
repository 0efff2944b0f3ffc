"""Glance image store backend for Datera EDF storage clusters."""

__version__ = "0.1.0"
