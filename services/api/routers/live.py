"""Live logs: WebSocket and Server-Sent Events followers of an execution's output."""

from fastapi import APIRouter

router = APIRouter()
