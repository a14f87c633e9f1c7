"""What the layer forms of ``lqer-hw sim`` (``--factors``, ``--model``) share: their
one-line input error and the reading of the activations file.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["LayerError", "read_activations"]


class LayerError(ValueError):
    """A one-line problem with the command's inputs."""


def read_activations(path: str, d_in: int) -> np.ndarray:
    """The ``(tokens, d_in)`` numeric array of the ``.npy`` file ``path``, as stored.

    Raises :class:`LayerError` naming ``inputs`` for a missing or unreadable file, a
    non-numeric array, or a shape other than ``(tokens, d_in)`` with ``tokens >= 1``.
    """
    if not os.path.isfile(path):
        raise LayerError(f"inputs must name an existing .npy file; got {path!r}")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise LayerError(f"inputs must be a NumPy .npy array; could not read {path!r}") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise LayerError(f"inputs must be a numeric .npy array (tokens x {d_in}); got {path!r}")
    if x.ndim != 2 or x.shape[1] != d_in or x.shape[0] < 1:
        raise LayerError(f"inputs must have shape (tokens, {d_in}) with tokens >= 1; "
                         f"got {x.shape}")
    return x
