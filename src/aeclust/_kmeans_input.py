"""The input checks of :class:`aeclust.KMeans`: scikit-learn's conventions, aeclust's wording.

scikit-learn's helpers do the work (``validate_data``: dtype, shape,
``n_features_in_`` and ``feature_names_in_``; ``_check_sample_weight``), and
their errors keep scikit-learn's wording where the estimator checks look for it
("Complex data not supported", "Reshape your data", "0 feature(s)", "sparse").
Every error is re-raised as an :class:`aeclust.errors.InvalidInputError` (a
``ValueError``, which the CLI prints as one line), in one line without the
data dumps some of scikit-learn's messages carry; a ``TypeError`` stays one too
(:class:`InvalidInputTypeError`). Where scikit-learn has no message of its own,
aeclust's stays: NaN and infinite values are counted and the message says to
impute them; strings are refused rather than parsed as numbers.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import InvalidParameterError as _SklearnInvalidParameterError
from sklearn.utils.validation import _check_sample_weight, validate_data

from .errors import InvalidInputError


class InvalidParameterError(InvalidInputError, _SklearnInvalidParameterError):
    """A hyper-parameter of the wrong type or value: scikit-learn's error (so also a
    ``TypeError``), with its message, and aeclust's :class:`InvalidInputError`."""


class InvalidInputTypeError(InvalidInputError, TypeError):
    """Input of a kind KMeans does not take (a sparse matrix, values that are not numbers):
    a ``TypeError``, as scikit-learn raises it, and aeclust's :class:`InvalidInputError`."""


def _shape_message(X, name: str) -> str:
    shape = np.shape(X)
    hint = ""
    if len(shape) == 1:
        hint = (": Reshape your data either using X.reshape(-1, 1) if it has a single feature "
                "or X.reshape(1, -1) if it is a single sample")
    return f"{name} must be 2-D (n_samples, n_features), got {len(shape)}-D shape {shape}{hint}"


def _reworded(exc: Exception, X, name: str) -> str:
    """One line from one of scikit-learn's messages, without its dump of the data."""
    msg = str(exc)
    if msg.startswith(("Expected 2D array", "Expected 2D input", "Found array with dim")):
        return _shape_message(X, name)
    if msg.startswith("Complex data not supported"):
        return (f"{name} holds complex numbers: Complex data not supported; give the real and "
                f"imaginary parts as separate features")
    if "inhomogeneous" in msg:  # ragged lists
        return f"{name} could not be read as an array: {' '.join(msg.split())}"
    if "could not convert" in msg or "argument must be" in msg:
        return f"{name} holds values that are not numbers ({msg}); encode them as numbers first"
    return " ".join(msg.split())


def check_finite(X: np.ndarray, name: str = "X") -> None:
    """Raise the aeclust message (the count of bad values, and what to do) on NaN or inf."""
    if not np.isfinite(X).all():
        bad = int(np.count_nonzero(~np.isfinite(X)))
        raise InvalidInputError(f"{name} contains {bad} NaN or infinite value(s); remove or impute them first")


def check_X(estimator, X, *, reset: bool) -> np.ndarray:
    """``X`` as a C-contiguous float32 array, checked; ``reset=True`` (fit) records
    ``n_features_in_`` and ``feature_names_in_`` on ``estimator``, ``reset=False``
    (predict, transform, score) checks ``X`` against them.

    Array-likes of numbers are taken as scikit-learn takes them (lists, DataFrames,
    object arrays that hold numbers, booleans, integers); sparse matrices, complex
    numbers, strings and other objects are refused with a message that says so.
    """
    kind = getattr(getattr(X, "dtype", None), "kind", None)
    if kind in ("U", "S"):  # numpy would parse numeric strings: text is not data
        raise InvalidInputError(f"X must hold numbers, got dtype {X.dtype}")
    try:
        X = validate_data(estimator, X, reset=reset, accept_sparse=False, dtype=np.float32, order="C",
                          ensure_all_finite=False)
    except InvalidInputError:
        raise
    except TypeError as exc:
        raise InvalidInputTypeError(_reworded(exc, X, "X")) from None
    except ValueError as exc:
        raise InvalidInputError(_reworded(exc, X, "X")) from None
    check_finite(X)
    return X


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` as float64 of length ``n_samples``: finite, non-negative, not all 0
    (scikit-learn's checks and messages). None, and weights that are all exactly 1, give
    None: the unweighted computation, bit for bit."""
    if sample_weight is None:
        return None
    stand_in = np.empty((n_samples, 0), dtype=np.float32)  # only its length is read
    try:
        w = _check_sample_weight(sample_weight, stand_in, dtype=np.float64, ensure_non_negative=True, copy=True)
    except TypeError as exc:
        raise InvalidInputTypeError(_reworded(exc, sample_weight, "sample_weight")) from None
    except ValueError as exc:
        raise InvalidInputError(_reworded(exc, sample_weight, "sample_weight")) from None
    if not w.any():  # scikit-learn's wording (which older releases did not check)
        raise InvalidInputError("Sample weights must contain at least one non-zero number.")
    return None if bool(np.all(w == 1.0)) else w
