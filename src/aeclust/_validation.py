"""Input checks shared by the estimators and metrics: one place, one wording."""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError

#: Seeds go to numpy's default_rng and to torch.manual_seed; both take any
#: whole number from 0 to 2**32 - 1 (numpy would take larger, torch not beyond 2**64 - 1).
SEED_MAX = 2**32 - 1


def check_array(X, *, name: str = "X", min_samples: int = 1, dtype=np.float32) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D floating array, or raise a clear error.

    ``dtype=None`` keeps float32 and float64 input as it is and turns anything
    else into float64.

    Rejects non-numeric data, arrays that are not 2-D, fewer than
    ``min_samples`` rows, zero features, and NaN or infinite values.
    """
    try:
        X = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(f"{name} could not be read as an array: {exc}") from None
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise InvalidInputError(f"{name} must hold numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1))" if X.ndim == 1 else ""
        raise InvalidInputError(
            f"{name} must be 2-D (n_samples, n_features), got {X.ndim}-D shape {X.shape}{hint}"
        )
    if X.shape[0] < min_samples:
        raise InvalidInputError(
            f"{name} has {X.shape[0]} sample(s); at least {min_samples} are needed"
        )
    if X.shape[1] == 0:
        raise InvalidInputError(f"{name} has no features (shape {X.shape})")
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        bad = int(np.count_nonzero(~np.isfinite(X)))
        raise InvalidInputError(
            f"{name} contains {bad} NaN or infinite value(s); remove or impute them first"
        )
    return X


def check_labels(labels, n_samples: int, *, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D array of length ``n_samples``, or raise a clear error."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D, got shape {labels.shape}")
    if len(labels) != n_samples:
        raise InvalidInputError(
            f"{name} has length {len(labels)} but X has {n_samples} samples; they must match"
        )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return labels
