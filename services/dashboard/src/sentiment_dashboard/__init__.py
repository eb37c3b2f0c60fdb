"""The dashboard: counts, daily trend, top sources and recent items, as HTML and JSON (read-only)."""
