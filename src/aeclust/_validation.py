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


def _reject_sparse(X, name: str) -> None:
    """Raise for a scipy.sparse matrix or array, which ``np.asarray`` would turn into an object scalar."""
    if "scipy.sparse" in type(X).__module__:
        raise InvalidInputError(
            f"{name} is a sparse matrix; these metrics need dense data: pass {name}.toarray() "
            f"(the dense array must fit in memory)"
        )


def _reject_complex(X: np.ndarray, name: str) -> None:
    if X.dtype.kind == "c":
        raise InvalidInputError(
            f"Complex data not supported: {name} has dtype {X.dtype}; pass real numbers "
            f"(for example {name}.real, np.abs({name}), or the real and imaginary parts as separate features)"
        )


def check_features(X, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """:func:`check_array` with ``dtype=None`` (float32 and float64 kept, other numbers made float64),
    after a clear error for sparse and for complex input (which ``check_array`` would read as an
    object scalar, or cast to real with only a warning)."""
    _reject_sparse(X, name)
    try:
        X = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(f"{name} could not be read as an array: {exc}") from None
    _reject_complex(X, name)
    return check_array(X, name=name, min_samples=min_samples, dtype=None)


def check_distance_matrix(D, *, name: str = "X", min_samples: int = 2, chunk_rows: int = 512) -> np.ndarray:
    """Return ``D`` as a 2-D numeric array if it is a valid precomputed distance matrix, or raise.

    The checks and messages are scikit-learn's (``pairwise_distances`` and
    ``silhouette_samples`` with ``metric="precomputed"``): square, non-negative, and
    zero on the diagonal (within ``100 * eps`` of its float type; exactly for integers),
    plus aeclust's check for NaN and infinite values. ``D`` is not copied: the values
    are scanned ``chunk_rows`` rows at a time, so the checks need no n x n temporary.
    """
    _reject_sparse(D, name)
    try:
        D = np.asarray(D)
    except Exception as exc:
        raise InvalidInputError(f"{name} could not be read as an array: {exc}") from None
    _reject_complex(D, name)
    if D.dtype == object or not (np.issubdtype(D.dtype, np.number) or D.dtype == bool):
        raise InvalidInputError(f"{name} must hold numbers, got dtype {D.dtype}")
    if D.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D distance matrix with metric='precomputed', "
                                f"got {D.ndim}-D shape {D.shape}")
    if D.shape[0] != D.shape[1]:
        raise InvalidInputError(
            f"Precomputed metric requires shape (n_queries, n_indexed). Got ({D.shape[0]}, {D.shape[1]}) "
            f"for {D.shape[0]} indexed. With metric='precomputed', {name} is the square matrix of the "
            f"distances between all pairs of samples"
        )
    if D.shape[0] < min_samples:
        raise InvalidInputError(f"{name} has {D.shape[0]} sample(s); at least {min_samples} are needed")
    bad = negative = 0
    for start in range(0, D.shape[0], chunk_rows):
        rows = D[start : start + chunk_rows]
        if D.dtype.kind == "f":
            bad += int(np.count_nonzero(~np.isfinite(rows)))
        negative += int(np.count_nonzero(rows < 0))
    if bad:
        raise InvalidInputError(f"{name} contains {bad} NaN or infinite value(s); remove or impute them first")
    if negative:
        raise InvalidInputError(
            f"Negative values in data passed to `pairwise_distances`. Precomputed distance need to have "
            f"non-negative values ({negative} negative value(s) in {name})"
        )
    diagonal = D.diagonal()
    if D.dtype.kind == "f":
        nonzero = np.abs(diagonal) > np.finfo(D.dtype).eps * 100
    else:
        nonzero = diagonal != 0
    if np.any(nonzero):
        raise InvalidInputError(
            "The precomputed distance matrix contains non-zero elements on the diagonal. "
            "Use np.fill_diagonal(X, 0)."
        )
    return D


def check_cluster_labels(labels, n_samples: int, *, name: str = "labels") -> np.ndarray:
    """:func:`check_labels` that also takes a column vector, as scikit-learn does (with its warning).

    :func:`check_labels` itself keeps refusing every 2-D shape (the Dask metrics rely on it).
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        import warnings

        from sklearn.exceptions import DataConversionWarning

        warnings.warn(
            f"A column-vector {name} was passed when a 1d array was expected. Please change the shape "
            f"of {name} to (n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        labels = labels.ravel()
    return check_labels(labels, n_samples, name=name)


def encode_labels(labels: np.ndarray, *, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels, sorted, and each sample's index among them (scikit-learn's LabelEncoder).

    Any labels numpy can sort work: integers of any sign, floats, strings, booleans.
    """
    try:
        classes, codes = np.unique(labels, return_inverse=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in labels.ravel().tolist()})
        raise InvalidInputError(
            f"{name} mix values that cannot be sorted together ({', '.join(kinds)}); use one type, "
            f"for example all strings or all numbers"
        ) from None
    return classes, codes.reshape(-1)


def check_sample_size(sample_size) -> int | None:
    """``sample_size`` as an int of at least 1, or None; scikit-learn's rule for the silhouette."""
    import numbers

    if sample_size is None:
        return None
    if isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral) or sample_size < 1:
        raise InvalidInputError(f"sample_size must be a whole number >= 1 or None, got {sample_size!r}")
    return int(sample_size)
