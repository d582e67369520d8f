"""Exceptions shared by every layer.

Library code raises these; the server maps each to an HTTP status with a clear
message and the CLI prints the message and exits non-zero.  They sit at the very
bottom of the import graph so any layer may raise them.
"""

from __future__ import annotations


class JewelsearchError(Exception):
    """Base class. ``status`` is the HTTP status the server answers with."""

    status = 400


class InvalidInput(JewelsearchError):
    """A request parameter or field is missing, malformed or out of range."""

    status = 400


class BadImage(InvalidInput):
    """The bytes are not a decodable image, or the image breaks a limit."""

    status = 400


class ImageTooLarge(BadImage):
    """Upload bytes or pixel count exceed the configured cap."""

    status = 413


class ItemNotFound(JewelsearchError):
    """No item with that id exists (or it was deleted)."""

    status = 404

    def __init__(self, item_id: object):
        super().__init__(f"item {item_id!r} not found")
        self.item_id = item_id


class ModelMismatch(JewelsearchError):
    """The catalog was embedded by another model than the one loaded."""

    status = 409


class ModelLoadError(JewelsearchError):
    """A model folder is missing, incomplete or inconsistent."""

    status = 500


class Unauthorized(JewelsearchError):
    status = 401


class Forbidden(JewelsearchError):
    status = 403
