"""Observability: logging set-up, the access log, Prometheus metrics and the health path."""
