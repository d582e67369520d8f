"""Flask application: JSON API and web pages over a SearchService."""

from .app import create_app

__all__ = ["create_app"]
