"""Query understanding: a shopper's words (any language with a glossary) to attributes,
styles, karat, price and the words left for the lexical index."""

from jewelsearch.query.glossary import (
    Glossary,
    GlossaryError,
    default_glossary,
    load_glossary,
)
from jewelsearch.query.parser import Understanding, understand

__all__ = ["Glossary", "GlossaryError", "Understanding", "default_glossary", "load_glossary", "understand"]
