"""The one registry of file names inside a model folder.

A model folder holds the encoder (its config and weights) and, beside it, everything that
recognition reads and the trainers' summaries. Every module that reads or writes one of these
files takes its name from here, so a rename happens in one place.

>>> from pathlib import Path
>>> Path("models/jewelclip-lite0") / HEADS_WEIGHTS
PosixPath('models/jewelclip-lite0/heads.safetensors')
"""

# The encoder: what `load_encoder` needs; the model id is a hash of these.
MODEL_FILE = "jewelsearch_model.json"
WEIGHTS_FILE = "weights.safetensors"
TRAINING_HISTORY = "training_history.json"

# Attribute heads (category, metal, gemstone, cut) and their context and stone refits.
HEADS_WEIGHTS = "heads.safetensors"
HEADS_META = "heads.json"
CONTEXT_HEADS_SUMMARY = "context_head.json"
STONE_HEADS_SUMMARY = "stone_heads.json"

# The gem specialist for photos of loose stones.
GEM_SPECIALIST_WEIGHTS = "gem_head.safetensors"
GEM_SPECIALIST_META = "gem_head.json"

# The localiser: where the piece (and its stone) is in a photo.
LOCALIZER_CONFIG = "localizer.json"
LOCALIZER_WEIGHTS = "localizer.safetensors"
LOCALIZER_HISTORY = "localizer_history.json"

# The robustness-tuned copy of the tower's top blocks that recognition reads.
RECOGNITION_TOP_WEIGHTS = "recognition_top.safetensors"
ROBUST_TUNING_SUMMARY = "robust_tuning.json"

# Heads fitted per fold of worn products, so evaluation never judges a trained product.
WORN_FOLDS_META = "worn_folds.json"
WORN_FOLDS_WEIGHTS = "worn_folds.safetensors"

# The instance head: how the tower's own maps become the second, instance vector per item
# (``embed/instance.py``); without these files a dense tower gets the default head.
INSTANCE_HEAD_CONFIG = "instance_head.json"
INSTANCE_HEAD_WEIGHTS = "instance_head.safetensors"

# The style head (solitaire, halo, hoop ...) over the same features, with the styles each
# category has and the probability ingest fills a style in at (``recognize/style_head.py``).
STYLE_HEAD_WEIGHTS = "style_head.safetensors"
STYLE_HEAD_META = "style_head.json"

# Files whose removal does not change the model id (everything but the encoder's own).
SIDE_FILES = (TRAINING_HISTORY, HEADS_WEIGHTS, HEADS_META, CONTEXT_HEADS_SUMMARY, STONE_HEADS_SUMMARY,
              GEM_SPECIALIST_WEIGHTS, GEM_SPECIALIST_META, LOCALIZER_CONFIG, LOCALIZER_WEIGHTS, LOCALIZER_HISTORY,
              RECOGNITION_TOP_WEIGHTS, ROBUST_TUNING_SUMMARY, WORN_FOLDS_META, WORN_FOLDS_WEIGHTS,
              INSTANCE_HEAD_CONFIG, INSTANCE_HEAD_WEIGHTS, STYLE_HEAD_WEIGHTS, STYLE_HEAD_META)
