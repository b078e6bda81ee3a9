"""Benchmark suite for Squall: ASGI apps and an interleaved runner."""

from __future__ import annotations
