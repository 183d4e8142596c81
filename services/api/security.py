"""Cross-cutting HTTP concerns: authentication (basic and bearer, constant-time), body size, redaction."""

import base64
import binascii
import hmac
import re
import uuid

from fastapi import Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import REQUEST_IDS
from shared.process.logs import bound, new_traceparent, trace_ids, valid_traceparent
from shared.process.settings import ApiSettings

# Open even when authentication is on: load balancers and orchestrators probe the healthcheck and the liveness
# and readiness routes, Prometheus scrapes /metrics (counts by fixed labels only: no ids, no secrets); the console's
# static pages hold no data and no secret (they call the API, which asks for credentials).
OPEN_PATHS = frozenset({"/healthcheck", "/healthcheck/", "/healthz", "/readyz", "/metrics", "/", "/ui", "/ui/"})
OPEN_PREFIXES = ("/ui/static/",)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def authorized(settings: ApiSettings, header: str) -> bool:
    """True when auth is off, or the Authorization header carries valid basic credentials or a known token."""
    basic_on = bool(settings.basic_auth_username and settings.basic_auth_password)
    if not basic_on and not settings.bearer_tokens:
        return True
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and settings.bearer_tokens:
        # Compare against every token, without stopping early: the time taken does not tell which matched.
        matches = [_same(value.strip(), token) for token in settings.bearer_tokens]
        return any(matches)
    if scheme.lower() == "basic" and basic_on:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user_ok = _same(user, settings.basic_auth_username)
        password_ok = _same(password, settings.basic_auth_password)
        return user_ok and password_ok
    return False


REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a client's X-Request-ID is kept only when it looks like an id


def _answering_with(send: Send, request_id: str, traceparent: str) -> Send:
    """`send` that adds X-Request-ID and traceparent to the answer's headers (so a client can quote them)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = [(b"x-request-id", request_id.encode()), (b"traceparent", traceparent.encode())]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


class GuardMiddleware:
    """Pure ASGI middleware (no task group and stream per request, as `app.middleware("http")` costs) run before
    any route for every HTTP request: a request without valid credentials answers 401 (the open paths and CORS
    preflights excepted), then a declared body over the limit answers 413. WebSocket routes check credentials
    themselves (services/api/routers/live.py)."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id", "")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        traceparent = valid_traceparent(headers.get("traceparent")) or new_traceparent()
        scope[REQUEST_IDS] = {"request_id": request_id, "traceparent": traceparent}  # for the 500 handler
        with bound(request_id=request_id, **trace_ids(traceparent)):
            if scope["type"] == "http":
                refusal = self.refusal(scope)
                send = _answering_with(send, request_id, traceparent)
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return
            await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        settings = self.settings
        headers = Headers(scope=scope)
        path = scope["path"]
        open_path = scope["method"] == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        if not open_path and not authorized(settings, headers.get("authorization", "")):
            challenge = {}
            if settings.basic_auth_username and settings.basic_auth_password:
                challenge["WWW-Authenticate"] = f'Basic realm="{settings.basic_auth_realm}"'
            return JSONResponse({"error": "authentication required"}, status_code=401, headers=challenge)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse(
                {"error": f"request body too large: {length} bytes, at most {settings.max_body_bytes}"},
                status_code=413,
            )
        return None
