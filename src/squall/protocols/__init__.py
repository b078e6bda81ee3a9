"""Sans-I/O wire protocols: bytes in, calls out. Nothing here imports asyncio."""
