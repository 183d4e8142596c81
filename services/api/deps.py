"""What routes depend on, as `Annotated` aliases: each reaches what services/api/bootstrap.py built at
start-up (kept on app.state), or reads one thing from the request. The providers are `async` only because
they never block: FastAPI calls them on the event loop instead of handing each to a worker thread."""

from typing import Annotated

from fastapi import Depends, Header, Request

from services.api.accepting import Acceptor
from services.api.bootstrap import Backends
from services.api.queries import Queries
from shared.domain.links import Links
from shared.process.settings import ApiSettings


async def get_backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


BackendsDep = Annotated[Backends, Depends(get_backends)]


async def get_settings(backends: BackendsDep) -> ApiSettings:
    return backends.settings


async def get_queries(backends: BackendsDep) -> Queries:
    return backends.queries


async def get_writes(backends: BackendsDep) -> Acceptor:
    return backends.writes


async def get_urls(request: Request) -> Links:
    """Absolute URLs of resources, based on the address the client used."""
    return Links(str(request.base_url))


async def client_ip(request: Request) -> str | None:
    return client_ip_of(request)


def client_ip_of(request: Request) -> str | None:
    """The enqueuer's address for audit: X-Real-IP, then the first X-Forwarded-For, then the peer."""
    real = request.headers.get("x-real-ip", "").strip()
    if real:
        return real
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if forwarded:
        return forwarded
    return request.client.host if request.client else None


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
QueriesDep = Annotated[Queries, Depends(get_queries)]
WritesDep = Annotated[Acceptor, Depends(get_writes)]
UrlsDep = Annotated[Links, Depends(get_urls)]
ClientIpDep = Annotated[str | None, Depends(client_ip)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Optional. The same key sent again to the same task within 24 h with the same request answers "
        "the same ids and creates no second job; with a different request it answers 409.",
    ),
]
