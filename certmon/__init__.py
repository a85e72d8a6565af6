"""certmon: the SLA monitor of a national CERT."""

__version__ = "0.1.0"
