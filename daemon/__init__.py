"""incidencias: an email-driven ticketing daemon for small online shops."""

__version__ = "0.1.0"
