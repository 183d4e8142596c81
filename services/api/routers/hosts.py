"""Docker hosts: take one out of rotation (blacklist) or put it back; the order goes on the control topic."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.api.accepting import Acceptor
from services.api.deps import WritesDep
from services.api.errors import BadRequest
from services.api.models import BlacklistAnswer
from services.api.openapi import reads, route
from shared.contract.events import HostBlacklisted

router = APIRouter()


class HostBody(BaseModel):
    host: str = Field(min_length=1, max_length=300, description="the host as its runner reports it, e.g. h1:2375")


def set_blacklisted(body: HostBody, writes: Acceptor, blacklisted: bool) -> BlacklistAnswer:
    host = body.host.strip()
    if not host or not host.isprintable() or any(c.isspace() for c in host):  # lone surrogates are unprintable
        raise BadRequest("host must be a host name as its runner reports it, like 'docker1:2375'")
    writes.accept(HostBlacklisted(host=host, blacklisted=blacklisted), topic=writes.topics.control)
    return BlacklistAnswer(host=host, blacklisted=blacklisted)


TAKE_OUT = "Take a Docker host out of rotation: no new executions (running ones finish)"
PUT_BACK = "Put a blacklisted Docker host back into rotation"


@route(router, "POST", "/docker-executor/blacklist", summary=TAKE_OUT, **reads(BlacklistAnswer))
def blacklist_host(body: HostBody, writes: WritesDep) -> BlacklistAnswer:
    return set_blacklisted(body, writes, True)


@route(router, "DELETE", "/docker-executor/blacklist", summary=PUT_BACK, **reads(BlacklistAnswer))
def unblacklist_host(body: HostBody, writes: WritesDep) -> BlacklistAnswer:
    return set_blacklisted(body, writes, False)
