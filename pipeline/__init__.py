"""rupture: offline pipeline from consented therapy recordings to a reviewable session record."""

__version__ = "0.1.0"
