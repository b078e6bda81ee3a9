"""Framework compatibility: FastAPI, Starlette, Django, Litestar and Quart apps under Squall."""

from __future__ import annotations
