"""A text tower for query texts whose Linear layers run in dynamic int8 (``text_query_int8``).

A text query's largest step is the text tower's forward (one torch thread in ``serve``).
torch's dynamic quantisation stores each Linear layer's weights as int8 and quantises its input
per call, which on this CPU runs the bundled MiniLM in about 0.6× the time; its vectors are
close to the fp32 tower's but not equal (cosine 0.94 median), so it is an opt-in, measured in
docs/experiments/2026-12-07-int8-query-text-tower.md. Only queries use it: items' text vectors
(ingest) stay the fp32 tower's, and the image tower is shared, not copied.
"""

from __future__ import annotations

import copy
import warnings

from torch import nn
from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

from jewelsearch.embed.encoder import Encoder

TEXT_TOWER = "text"  # a text tower in its own module: the bundled MiniLM, open_clip's HF towers


def int8_query_encoder(encoder: Encoder) -> Encoder:
    """An encoder like ``encoder`` whose text path's ``nn.Linear`` layers are dynamic int8; for
    ``encode_texts`` only (its image tower is ``encoder``'s own module, unchanged).

    Only a model whose text tower is its own module (``model.text``) qualifies: open_clip's
    built-in CLIP text transformer reads its Linear weights' dtype, which a quantised layer
    does not have."""
    model = encoder.model
    if not isinstance(getattr(model, TEXT_TOWER, None), nn.Module):
        raise ValueError("needs a model whose text tower is its own module (model.text), as the bundled model's is")
    # Deep-copy everything but the image tower, which both encoders share.
    text_model = copy.deepcopy(model, memo={id(model.visual): model.visual})
    layers = {name: default_dynamic_qconfig for name, module in text_model.named_modules()
              if type(module) is nn.Linear and name.split(".")[0] == TEXT_TOWER}
    if not layers:
        raise ValueError("the model's text tower has no Linear layers to quantise")
    with warnings.catch_warnings():  # torch.ao announces its own deprecation on every call
        warnings.simplefilter("ignore")
        quantize_dynamic(text_model, qconfig_spec=layers, inplace=True)
    return Encoder(text_model, encoder.preprocess, encoder.tokenizer, encoder.model_id,
                   batch_size=encoder.batch_size, max_text_chars=encoder.max_text_chars, folder=encoder.folder)
