"""Cross-cutting HTTP concerns: authentication (basic and bearer, constant-time), body size, redaction."""

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from shared.process.settings import ApiSettings

# Open even when authentication is on: load balancers and orchestrators probe the healthcheck; the console's
# static pages hold no data and no secret (they call the API, which asks for credentials).
OPEN_PATHS = frozenset({"/healthcheck", "/healthcheck/", "/", "/ui", "/ui/"})
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


def auth_middleware(
    settings: ApiSettings,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if request.method == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await call_next(request)
        if not authorized(settings, request.headers.get("authorization", "")):
            headers = {}
            if settings.basic_auth_username and settings.basic_auth_password:
                headers["WWW-Authenticate"] = f'Basic realm="{settings.basic_auth_realm}"'
            return JSONResponse({"error": "authentication required"}, status_code=401, headers=headers)
        return await call_next(request)

    return check


def body_limit_middleware(
    settings: ApiSettings,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse(
                {"error": f"request body too large: {length} bytes, at most {settings.max_body_bytes}"},
                status_code=413,
            )
        return await call_next(request)

    return check
