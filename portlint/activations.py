"""Activation statistics measured by running the model on sample inputs.

The hazard rules estimate ranges from weights and BatchNorm statistics; given sample inputs
they use what the model actually produced instead, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorStats:
    """What one tensor held over all samples: its range, and each channel's largest |value|.

    Channels are axis 1 (NCHW activations, [N, C] features); ``channel_absmax`` is None for
    tensors of rank < 2.
    """

    minimum: float
    maximum: float
    channel_absmax: np.ndarray | None
    samples: int

    @property
    def absmax(self) -> float:
        return max(abs(self.minimum), abs(self.maximum))
