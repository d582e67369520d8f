"""The one way to build a Recognizer from a model folder.

Serving, evaluation and the tools all load recognition the same way: the attribute heads,
the gem specialist, the localiser, the robustness-tuned recognition top and the style head, each where the
encoder's folder holds it, and zero-shot prompts for a model without a folder.
"""

from __future__ import annotations

from typing import Mapping

from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.fold_batch_norm import fold_batch_norm, fold_module
from jewelsearch.embed.fuse_activation import join_activations as join_conv_activations
from jewelsearch.recognize.gem_specialist import GemSpecialist
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.recognize.localizer import Localizer
from jewelsearch.recognize.prompt_blend import PROMPT_WEIGHTS
from jewelsearch.recognize.recognition_top import load_recognition_top
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.recognize.style_head import StyleHead


def load_recognizer(encoder: Encoder, *, gem_specialist: bool = True, fold_for_serving: bool = False,
                    join_activations: bool = True, prompt_weights: Mapping[str, float] | None = None) -> Recognizer:
    """Everything the encoder's model folder holds for recognition.

    ``gem_specialist=False`` leaves the loose-stone classifier out (region evaluation judges
    worn pieces, never stones). ``fold_for_serving`` joins the batch norms of the frozen tower
    and of the recognition top into their convolutions: faster, for a process that only reads
    the model. The top is shaped after the unfolded tower, so it is loaded before the folding.
    With ``fold_for_serving``, ``join_activations`` then runs each folded convolution and the
    ReLU6 after it as one kernel (``embed/fuse_activation.py``: the same outputs, bit for bit).
    ``prompt_weights`` (default ``prompt_blend.PROMPT_WEIGHTS``; ``{}``: the heads alone) combines
    the text prompts' answer with a head's on pieces.
    """
    folder = encoder.folder
    recognition_top = load_recognition_top(encoder)
    if fold_for_serving:
        folded = fold_batch_norm(encoder.model.visual)
        if recognition_top is not None:
            fold_module(recognition_top)
        if folded and join_activations:
            join_conv_activations(encoder.model.visual.trunk)
            if recognition_top is not None:
                join_conv_activations(recognition_top)
    heads = AttributeHeads.load(folder) if folder is not None else None
    return Recognizer(encoder, heads, gem_specialist=GemSpecialist.load(folder) if gem_specialist else None,
                      localizer=Localizer.load(encoder, folder), recognition_top=recognition_top,
                      style_head=StyleHead.load(folder),
                      prompt_weights=PROMPT_WEIGHTS if prompt_weights is None else prompt_weights)
