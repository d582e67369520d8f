"""Per-user recommendations from events and item embeddings."""

from jewelsearch.recommend.attributes import AttributeTable
from jewelsearch.recommend.blend import BlendWeights
from jewelsearch.recommend.collaborative import CollaborativeSignals
from jewelsearch.recommend.history import UserHistory, build_history, history_from_rows
from jewelsearch.recommend.recommender import Recommendation, Recommender

__all__ = ["AttributeTable", "BlendWeights", "CollaborativeSignals", "UserHistory", "build_history",
           "history_from_rows", "Recommendation", "Recommender"]
