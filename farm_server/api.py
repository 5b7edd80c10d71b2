"""The farm's HTTP API (FastAPI): claims, releases, status, config, telemetry, metrics.

FastAPI because request bodies are validated by pydantic models (a malformed body gets
a 422 that names the field) and the OpenAPI document (``/docs``, ``/openapi.json``)
comes from the same models; uvicorn serves it. Every request that changes state needs
``Authorization: Bearer <token>`` (the token file in the farm's home), checked in
constant time by a middleware before routing or body parsing. Reads are open, on a
loopback bind by default.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated, Any, Optional, cast

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from farm_server.apidocs import add_docs_page
from farm_server.config import FarmConfig, describe_errors
from shadowfarm_wire.profile import Profile

if TYPE_CHECKING:
    from farm_server.farm import Farm

__all__ = ["create_app"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Name = Annotated[str, StringConstraints(min_length=1, max_length=512)]
NodeId = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileBody(Strict):
    interpreter: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    python_version: Name
    distributions_hash: Name
    rootdir: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    warm_modules: list[Name] = Field(default_factory=list, max_length=500)


class ClaimBody(Strict):
    profile: ProfileBody
    count: int = Field(ge=1, le=256, description="workers wanted (xdist -n)")
    modules: list[Name] = Field(
        default_factory=list, max_length=5000, description="modules the run's tests import"
    )
    shadow_tests: list[NodeId] = Field(
        default_factory=list, max_length=10_000, description="cheap tests to warm with"
    )
    client: dict[Name, str | int | float | bool | None] = Field(default_factory=dict)


class ScaleBody(Strict):
    min_warm: int | None = Field(default=None, ge=0, le=256)
    max_warm: int | None = Field(default=None, ge=0, le=256)


class DrainBody(Strict):
    profile: str = Field(default="all", description="a profile key prefix, or 'all'")


class TelemetryBody(Strict):
    claim_id: Name | None = None
    worker_id: Name | None = None
    samples: list[dict[str, Any]] = Field(max_length=100_000)


#: every FarmConfig field, optional, plus per-profile scaling
ConfigUpdate: Any = create_model(  # type: ignore[call-overload]
    "ConfigUpdate",
    __config__=ConfigDict(extra="forbid"),
    profiles=(dict[str, ScaleBody], Field(default_factory=dict)),
    **{name: (Optional[field.annotation], None) for name, field in FarmConfig.model_fields.items()},  # noqa: UP045
)


def _message(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)


def create_app(farm: Farm) -> FastAPI:
    app = FastAPI(
        title="pytest-shadowfarm farm",
        version="1",
        description="Warm pytest-xdist workers on demand. State-changing requests need "
        "'Authorization: Bearer <token>' (the token file in the farm's home directory).",
        # FastAPI's own pages load their scripts from a CDN: a farm on a host without
        # internet access would serve a blank /docs. Ours is one self-contained page.
        docs_url=None,
        redoc_url=None,
    )
    add_docs_page(app)
    token = farm.token.encode()

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if request.method not in SAFE_METHODS:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
                return JSONResponse(
                    {
                        "detail": "missing or wrong bearer token: send 'Authorization: "
                        f"Bearer <token>' with the token in {farm.home.token_file}"
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        return JSONResponse({"detail": errors, "message": _message(errors)}, status_code=422)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "pid": farm.pid}

    @app.post("/api/workers/claim")
    def claim(body: ClaimBody) -> dict[str, Any]:
        try:
            profile = Profile.from_dict(body.profile.model_dump())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        result = farm.claim(profile, body.count, body.modules, body.shadow_tests, body.client)
        return {
            "claim_id": result.claim_id,
            "profile_key": result.profile_key,
            "registered": result.registered,
            "warming": result.warming,
            "workers": [
                {"id": w.id, "socket": w.socket, "token": w.token, "modules": sorted(w.modules)}
                for w in result.workers
            ],
        }

    @app.post("/api/workers/{worker_id}/release")
    def release(worker_id: Annotated[str, StringConstraints(max_length=64)]) -> dict[str, Any]:
        worker = farm.pool.release(worker_id)
        if worker is None:
            raise HTTPException(404, f"no worker {worker_id!r} in this farm")
        return {"id": worker.id, "state": worker.state}

    @app.get("/api/swarm/status")
    def status() -> dict[str, Any]:
        return farm.status()

    @app.get("/api/swarm/config")
    def get_config() -> dict[str, Any]:
        return farm.pool.config.model_dump()

    @app.put("/api/swarm/config")
    def put_config(update: ConfigUpdate) -> dict[str, Any]:
        body = cast(Any, update)
        changes = {k: v for k, v in body.model_dump(exclude={"profiles"}).items() if v is not None}
        try:
            new = farm.pool.config.updated(changes)
        except ValidationError as exc:
            raise HTTPException(422, describe_errors(exc)) from None
        scaled = {}
        for prefix, scale in body.profiles.items():
            keys = farm.pool.scale(prefix, scale.min_warm, scale.max_warm)
            if not keys:
                raise HTTPException(404, f"no live profile matches {prefix!r}")
            scaled[prefix] = keys
        farm.set_config(new)
        return {**new.model_dump(), "scaled": scaled}

    @app.post("/api/swarm/drain")
    def drain(body: DrainBody) -> dict[str, Any]:
        return {"drained": farm.pool.drain(body.profile)}

    @app.post("/api/swarm/telemetry")
    def telemetry(body: TelemetryBody) -> dict[str, Any]:
        row = farm.store.add_telemetry(farm.clock(), body.claim_id, body.worker_id, body.samples)
        return {"stored": len(body.samples), "id": row}

    @app.get("/api/swarm/telemetry")
    def recent_telemetry(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        return {"telemetry": farm.store.recent_telemetry(limit)}

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(farm.registry), media_type=CONTENT_TYPE_LATEST)

    return app
