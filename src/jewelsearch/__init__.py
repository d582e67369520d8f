"""jewelsearch: visual similarity search and recommendation engine for jewelry."""

__version__ = "0.1.0"
