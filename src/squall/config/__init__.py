"""Configuration: the options (declared once, as one frozen dataclass), the
addresses they name, and the TOML file that can hold them."""

from __future__ import annotations

from squall.config.options import Config

__all__ = ["Config"]
