"""The web console: static pages served at /ui (no data in them; they call the JSON API)."""

from fastapi import APIRouter

router = APIRouter()
