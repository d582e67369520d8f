"""Image/text encoders over open_clip models, image loading, the default model."""

from .images import LoadedImage, load_image
from .encoder import Encoder
from .model_folder import load_encoder

__all__ = ["LoadedImage", "load_image", "Encoder", "load_encoder"]
