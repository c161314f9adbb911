"""recordbase: a self-hosted custom records service with vendor-compatible faces."""

__version__ = "0.1.0"
