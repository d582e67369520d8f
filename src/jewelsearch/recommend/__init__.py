"""Per-user recommendations from events and item embeddings."""

from .blend import BlendWeights
from .collaborative import CollaborativeSignals
from .history import UserHistory, build_history
from .recommender import Recommendation, Recommender

__all__ = ["BlendWeights", "CollaborativeSignals", "UserHistory", "build_history", "Recommendation",
           "Recommender"]
