"""Flask application: JSON API and web pages over a SearchService."""

from jewelsearch.server.app import create_app

__all__ = ["create_app"]
