"""Training on top of the store: ``fit`` runs epochs and saves each one into a ``ModelStore``.

::

    from video_interpreter import ModelStore, build_model
    from video_interpreter.data import MovingSquares
    from video_interpreter.training import fit

    model = build_model("tiny_r2plus1d")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    store = ModelStore("models/saved_models")
    checkpoint = store.resume(model, optimizer)          # None on a first run
    for result in fit(model, optimizer, MovingSquares("train"), MovingSquares("val"), store,
                      epochs=5, start_epoch=checkpoint.epoch if checkpoint else 0):
        print(result.epoch, result.val_acc, result.model.file)

``examples/train.py`` is the same as a script, with a scheduler and ``--resume``.
"""

from ._fit import EpochResult, evaluate, fit, train_one_epoch

__all__ = ["EpochResult", "evaluate", "fit", "train_one_epoch"]
