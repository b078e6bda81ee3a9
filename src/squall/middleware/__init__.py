"""ASGI middleware usable on its own, outside Squall too."""
