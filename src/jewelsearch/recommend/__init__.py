"""Per-user recommendations from events and item embeddings."""

from .blend import BlendWeights
from .collaborative import CollaborativeSignals
from .attributes import AttributeTable
from .history import UserHistory, build_history, history_from_rows
from .recommender import Recommendation, Recommender

__all__ = ["AttributeTable", "BlendWeights", "CollaborativeSignals", "UserHistory", "build_history",
           "history_from_rows", "Recommendation", "Recommender"]
