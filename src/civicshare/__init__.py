"""civicshare: share citizen records and documents between public-sector organisations."""

__version__ = "0.1.0"
