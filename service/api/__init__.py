"""The HTTP API: thin routers over the answer, summary, briefing and article services."""

from service.api.app import create_app

__all__ = ["create_app"]
