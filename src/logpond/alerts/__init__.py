"""Log alerts."""
