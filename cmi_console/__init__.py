"""cmi-console: governance and audit console for continuous model integration."""

__version__ = "0.1.0"
