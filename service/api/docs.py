"""The OpenAPI schema, Swagger UI and ReDoc, served with their assets from this process.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, with no integrity check,
and ReDoc's fonts from Google: whoever controls those hosts runs script on the page.
fastapi-offline ships the same files in its wheel; they are served from there, so
nothing is fetched from the internet when the docs open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.params import Depends
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from service.api.errors import ApiError

ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_PREFIX = "/docs/assets"


def add_docs(app: FastAPI, dependencies: list[Depends]) -> None:
    """/openapi.json, /docs, /redoc and their assets, behind ``dependencies``."""
    router = APIRouter(include_in_schema=False, dependencies=dependencies)

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @router.get("/openapi.json")
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @router.get("/docs")
    def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{base}{ASSET_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSET_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSET_PREFIX}/favicon.png",
            # Swagger UI otherwise sends the schema to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=f"{base}/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSET_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSET_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(ASSET_PREFIX + "/{name}")
    def asset(name: str) -> FileResponse:
        # A fixed list, never a path built from the URL.
        media_type = ASSETS.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"No docs asset '{name}'.")
        return FileResponse(
            ASSET_DIR / name,
            media_type=media_type,
            headers={"Cache-Control": "private, max-age=86400"},
        )

    app.include_router(router)


def openapi_with_security(app: FastAPI, keys_enabled: bool) -> dict[str, Any]:
    """The generated schema, plus the bearer scheme on every /v1 operation when keys
    are configured, so Swagger UI's Authorize button and generated clients send it."""
    schema = FastAPI.openapi(app)
    if keys_enabled and "bearer" not in schema.get("components", {}).get("securitySchemes", {}):
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "One of NEWSDESK_API_KEYS.",
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/") or path == "/metrics":
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
    return schema
