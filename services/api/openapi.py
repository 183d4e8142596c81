"""What /openapi.json promises, in one place: routes registered with and without a trailing slash (both are
part of the contract, the second undocumented), the error answers each kind of route documents, and
FastAPI's document completed where it cannot see what the routes do."""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from services.api.models import ERRORS, WRITE_ERRORS
from services.api.schemas import JobSpec

Handler = TypeVar("Handler", bound=Callable[..., Any])


def route(router: APIRouter, method: str, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    """Register a route on `router` with and without a trailing slash (both are part of the contract)."""

    def register(func: Handler) -> Handler:
        router.add_api_route(path, func, methods=[method], **kwargs)
        router.add_api_route(path + "/", func, methods=[method], include_in_schema=False, **kwargs)
        return func

    return register


def reads(model: type[BaseModel]) -> dict[str, Any]:
    """A route answering `model`, or one of the documented errors."""
    return {"response_model": model, "responses": ERRORS}


def job_writes(model: type[BaseModel]) -> dict[str, Any]:
    """A route whose body is a job definition: read by hand (for 413 and plain 400 messages), documented here."""
    return {
        "response_model": model,
        "responses": ERRORS | WRITE_ERRORS,
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
            }
        },
    }


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed: the job definition that POST and PUT read by hand, and 400 (with our
    error body) where FastAPI would announce its 422 (this API answers 400 for every malformed request)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    job_spec = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(job_spec.pop("$defs", {}))
    components["JobSpec"] = job_spec
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path in schema["paths"].values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {
                    "description": "the request is malformed; the message says how",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }
    app.openapi_schema = schema
    return schema
