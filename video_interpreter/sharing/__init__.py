"""Sharing a model: model cards and Hub-style model directories. On top of the flow, beside the
summaries and diagrams it reuses::

    from video_interpreter.sharing import from_pretrained, save_pretrained, write_model_card
    write_model_card("models/saved_models/v1_best.pth", "cards/v1.md")
    save_pretrained(model, "pretrained/v1")      # config.json, model.safetensors, README.md
    model = from_pretrained("pretrained/v1")     # or "org/name" on the Hub (hub extra)
"""

from ._card import LIBRARY_NAME, ModelCard, model_card, write_model_card
from ._pretrained import (
    CARD_NAME,
    CONFIG_NAME,
    DIAGRAM_NAME,
    WEIGHTS_NAME,
    from_pretrained,
    save_pretrained,
)

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "DIAGRAM_NAME",
    "LIBRARY_NAME",
    "WEIGHTS_NAME",
    "ModelCard",
    "from_pretrained",
    "model_card",
    "save_pretrained",
    "write_model_card",
]
