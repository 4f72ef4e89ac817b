"""The one decision rule: a probability at or above the threshold is "generated", below it "real".

Every verdict and every thresholded metric goes through :class:`DecisionRule`, so the comparison is written once and
an invalid threshold is refused where the rule is made, whichever front end made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The threshold of a model that was never calibrated (``nirnet eval --calibrate`` replaces it).
DEFAULT_THRESHOLD = 0.5
GENERATED = "generated"
REAL = "real"


@dataclass(frozen=True)
class DecisionRule:
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        value = self.threshold
        valid = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
        if not valid or not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {value!r}")
        object.__setattr__(self, "threshold", float(value))

    @classmethod
    def of(cls, threshold: float | DecisionRule | None, default: float = DEFAULT_THRESHOLD) -> DecisionRule:
        """A rule from an override (a threshold or a rule) or, without one, from ``default``."""
        if isinstance(threshold, DecisionRule):
            return threshold
        return cls(default if threshold is None else threshold)

    def is_generated(self, probability: float) -> bool:
        return probability >= self.threshold

    def verdict(self, probability: float) -> str:
        return GENERATED if self.is_generated(probability) else REAL

    def flags(self, probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
        """:meth:`is_generated` of many probabilities at once, as a boolean array (for metrics)."""
        return np.asarray(probabilities, dtype=float) >= self.threshold
