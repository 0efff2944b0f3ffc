"""Glance image store backend for Datera EDF storage clusters."""

from datera_glance import third_party_warnings

__version__ = "1.0.0"

# Before anything imports os-brick: glance-api's log and the CLI's stderr show no library's
# warnings about itself (third_party_warnings says which, and why).
third_party_warnings.silence()
