"""One APIRouter per resource; ROUTERS is the order they are included in the app."""

from fastapi import APIRouter

from services.api.routers import console, executions, health, hosts, jobs, live, logs, status, tasks

ROUTERS: tuple[APIRouter, ...] = (
    tasks.router,
    jobs.router,
    executions.router,
    live.router,
    logs.router,
    hosts.router,
    health.router,
    status.router,
    console.router,
)
