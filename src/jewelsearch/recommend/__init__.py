"""Per-user recommendations from events and item embeddings."""

from .history import UserHistory, build_history
from .recommender import Recommendation, Recommender

__all__ = ["UserHistory", "build_history", "Recommendation", "Recommender"]
