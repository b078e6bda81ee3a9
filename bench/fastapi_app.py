"""A minimal FastAPI app: ``GET /items/{item_id}`` returning a Pydantic model."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    item_id: int
    name: str
    price: float
    tags: list[str]


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> Item:
    return Item(item_id=item_id, name="widget", price=9.99, tags=["a", "b"])
