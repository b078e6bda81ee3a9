"""The ASGI side: request cycles, lifespan and scope building."""
