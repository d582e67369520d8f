"""Image/text encoders over open_clip models, image loading, the default model."""

from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.images import LoadedImage, load_image
from jewelsearch.embed.model_folder import load_encoder

__all__ = ["LoadedImage", "load_image", "Encoder", "load_encoder"]
