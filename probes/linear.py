"""Linear probes as scikit-learn estimators, and held-out accuracy with Wilson intervals.

- :class:`LinearProbe`: standardise -> PCA (optional) -> ``LogisticRegressionCV`` on
  flattened activations (n_samples, n_features); discrete labels (cell, present).
- :class:`RidgeProbe`: standardise -> PCA (optional) -> ``RidgeCV``; coordinates (x, y).
- :class:`PositionReadout`: on a flattened conv map (C, H, W), one logistic score per
  maze cell from the channel vector averaged over the map positions covering that cell,
  the same weights at every cell; the predicted cell is the argmax. ``C + 1`` parameters,
  translation-equivariant: "is the object *here*", asked at each cell.

All follow the estimator contract (``__init__`` stores params, ``fit`` validates and
returns self, learned attributes end in ``_``) and are deterministic for a fixed
``random_state``. ``coef_`` / ``intercept_`` of the two pipelines are mapped back to the
input features, so a probe is one linear map on the activations whatever happens inside.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from gmg.probes.datasets import ProbeError
from gmg.training.env import OBS_SIZE, WORLD_DIM
from gmg.training.render import pixel_cells


def _one_class_error(name: str, classes: np.ndarray) -> ProbeError:
    return ProbeError(
        f"{name} needs at least two classes in the labels, got only one class ({classes[0]!r}): "
        "use more scenes or a label that varies"
    )


def _reduce_fit(X: np.ndarray, standardize: bool, n_components: int | None, random_state):
    """Fit the scaler and PCA; returns (scaler or None, pca or None, transformed X)."""
    scaler = StandardScaler().fit(X) if standardize else None
    Z = scaler.transform(X) if scaler is not None else X
    pca = None
    if n_components is not None:
        k = min(int(n_components), Z.shape[0] - 1, Z.shape[1])
        if 0 < k < Z.shape[1]:
            pca = PCA(n_components=k, svd_solver="randomized" if k < 0.8 * min(Z.shape) else "full",
                      random_state=random_state).fit(Z)
            Z = pca.transform(Z)
    return scaler, pca, Z


def _reduce_apply(X, scaler, pca):
    Z = scaler.transform(X) if scaler is not None else X
    return pca.transform(Z) if pca is not None else Z


def _compose(coef: np.ndarray, intercept: np.ndarray, scaler, pca) -> tuple[np.ndarray, np.ndarray]:
    """Map a linear model on reduced features back to the input features."""
    coef = np.atleast_2d(coef)
    intercept = np.atleast_1d(intercept).astype(np.float64)
    if pca is not None:
        intercept = intercept - coef @ (pca.components_ @ pca.mean_)
        coef = coef @ pca.components_
    if scaler is not None:
        intercept = intercept - coef @ (scaler.mean_ / scaler.scale_)
        coef = coef / scaler.scale_[None, :]
    return coef, intercept


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Logistic regression with cross-validated L2 strength, after optional PCA.

    Parameters
    ----------
    Cs : int or tuple of float, inverse regularisation strengths tried (``LogisticRegressionCV``);
        the default stops at C=1 because weaker penalties cost many lbfgs iterations.
    cv : int, number of folds (stratified when every class has that many samples).
    n_components : int or None, PCA components kept after standardising (None: no PCA).
    standardize : bool, z-score each feature first.
    max_iter, tol : lbfgs iterations and tolerance.
    random_state : int, seeds the folds and the randomised PCA.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    coef_ : ndarray (n_classes or 1, n_features_in_), in input feature space.
    intercept_ : ndarray (n_classes or 1,)
    C_ : float, the chosen strength.
    n_features_in_ : int
    """

    def __init__(self, Cs=(0.001, 0.01, 0.1, 1.0), cv=3, n_components=64, standardize=True, max_iter=100,
                 tol=1e-3, random_state=0):
        self.Cs = Cs
        self.cv = cv
        self.n_components = n_components
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on X array-like (n_samples, n_features) and class labels y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        if len(self.classes_) < 2:
            raise _one_class_error(type(self).__name__, self.classes_)
        self.scaler_, self.pca_, Z = _reduce_fit(X, self.standardize, self.n_components, self.random_state)
        n_splits = max(2, min(int(self.cv), int(counts.max()), len(y) // 2))
        if counts.min() >= n_splits:
            folds = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
        else:
            folds = KFold(n_splits, shuffle=True, random_state=self.random_state)
        kwargs = dict(Cs=self.Cs, cv=folds, max_iter=self.max_iter, tol=self.tol, random_state=self.random_state)
        params = inspect.signature(LogisticRegressionCV).parameters
        if "l1_ratios" in params:  # scikit-learn >= 1.8: say explicitly what the old defaults were
            kwargs.update(l1_ratios=(0.0,), scoring="accuracy", use_legacy_attributes=False)
        self.model_ = LogisticRegressionCV(**kwargs).fit(Z, y)
        self.C_ = float(np.ravel(self.model_.C_)[0])
        self.n_iter_ = np.atleast_1d(np.max(self.model_.n_iter_))
        self.coef_, self.intercept_ = _compose(self.model_.coef_, self.model_.intercept_, self.scaler_, self.pca_)
        return self

    def _reduced(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _reduce_apply(X, self.scaler_, self.pca_)

    def decision_function(self, X):
        """Scores (n_samples, n_classes), or (n_samples,) for two classes."""
        Z = self._reduced(X)
        return self.model_.decision_function(Z)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes)."""
        Z = self._reduced(X)
        return self.model_.predict_proba(Z)

    def predict(self, X):
        """Predicted labels (n_samples,)."""
        Z = self._reduced(X)
        return self.model_.predict(Z)


class RidgeProbe(RegressorMixin, BaseEstimator):
    """Ridge regression with leave-one-out choice of alpha, after optional PCA.

    Parameters
    ----------
    alphas : tuple of float, strengths tried by ``RidgeCV``.
    n_components : int or None, PCA components kept after standardising.
    standardize : bool
    random_state : int, seeds the randomised PCA.

    Attributes
    ----------
    coef_ : ndarray (n_targets, n_features_in_) or (1, n_features_in_)
    intercept_ : ndarray (n_targets,)
    alpha_ : float
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), n_components=None, standardize=True, random_state=0):
        self.alphas = alphas
        self.n_components = n_components
        self.standardize = standardize
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets)."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
        self.scaler_, self.pca_, Z = _reduce_fit(X, self.standardize, self.n_components, self.random_state)
        self.model_ = RidgeCV(alphas=self.alphas).fit(Z, y)
        self.alpha_ = float(self.model_.alpha_)
        self.coef_, self.intercept_ = _compose(self.model_.coef_, self.model_.intercept_, self.scaler_, self.pca_)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # x and y together
        return tags

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_targets)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict(_reduce_apply(X, self.scaler_, self.pca_))


def cell_positions(map_shape: tuple[int, int, int], world_dim: int, size: int) -> list[np.ndarray]:
    """Flat map positions (over H*W) covering each of the world_dim**2 cells.

    A position covers the cell holding its centre pixel; a cell no centre falls in (maps
    coarser than the maze) gets the position containing the cell's centre.
    """
    _, h, w = map_shape
    cells = pixel_cells(world_dim, size)

    def cell_of(i: int, n: int) -> int:
        return int(cells[min(size - 1, int((i + 0.5) * size / n))])

    rows = np.array([cell_of(i, h) for i in range(h)])
    cols = np.array([cell_of(j, w) for j in range(w)])
    out = []
    for r in range(world_dim):
        for c in range(world_dim):
            pos = np.flatnonzero((rows[:, None] == r) & (cols[None, :] == c))
            if pos.size == 0:
                centre = (r + 0.5) * size / world_dim, (c + 0.5) * size / world_dim
                pos = np.array([int(centre[0] * h / size) * w + int(centre[1] * w / size)])
            out.append(pos)
    return out


class PositionReadout(ClassifierMixin, BaseEstimator):
    """Which cell holds the object, read out at each cell with one shared logistic score.

    Parameters
    ----------
    map_shape : (C, H, W) of the flattened conv map, or None: a generic form (used by the
        scikit-learn checks) where every feature is a position with one channel and the
        i-th class is scored at position ``i % n_features``.
    world_dim, size : maze cells per side and frame size in pixels (placing positions in cells).
    C : float, inverse L2 strength of the shared logistic regression.
    max_iter : int

    With a ``map_shape``, labels are cell indices (row * world_dim + col) in [0, n_cells).

    Attributes
    ----------
    classes_ : ndarray, labels seen in training (predictions are among them).
    cells_ : ndarray, the group (cell) scoring each class.
    coef_ : ndarray (1, C) weights on the standardised channel vector.
    intercept_ : ndarray (1,)
    n_features_in_ : int
    """

    def __init__(self, map_shape=None, world_dim=WORLD_DIM, size=OBS_SIZE, C=1.0, max_iter=300):
        self.map_shape = map_shape
        self.world_dim = world_dim
        self.size = size
        self.C = C
        self.max_iter = max_iter

    def _groups(self, n_features: int) -> tuple[tuple[int, int, int], list[np.ndarray]]:
        if self.map_shape is None:
            return (1, 1, n_features), [np.array([k % n_features]) for k in range(len(self.classes_))]
        shape = tuple(int(s) for s in self.map_shape)
        if len(shape) != 3 or int(np.prod(shape)) != n_features:
            raise ProbeError(
                f"PositionReadout needs a conv map: map_shape {tuple(self.map_shape)} does not "
                f"match {n_features} features (use a (C, H, W) layer)"
            )
        return shape, cell_positions(shape, self.world_dim, self.size)

    def _cell_features(self, X: np.ndarray) -> np.ndarray:
        """(n_samples, n_cells, C) channel vectors averaged over each cell's positions."""
        c, h, w = self.shape_
        maps = X.reshape(X.shape[0], c, h * w)
        return np.stack([maps[:, :, pos].mean(axis=2) for pos in self.groups_], axis=1)

    def fit(self, X, y):
        """Fit on X (n_samples, C*H*W) flattened conv maps and y (n_samples,) cells."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise _one_class_error(type(self).__name__, self.classes_)
        self.shape_, self.groups_ = self._groups(X.shape[1])
        n_cells = len(self.groups_)
        if self.map_shape is None:
            self.cells_ = np.arange(len(self.classes_))  # class i is scored at group i
            y_cell = np.searchsorted(self.classes_, y)
        else:
            if (not np.issubdtype(self.classes_.dtype, np.integer) or self.classes_.min() < 0
                    or self.classes_.max() >= n_cells):
                raise ProbeError(f"PositionReadout labels must be cell indices 0..{n_cells - 1}, got {self.classes_[:5]!r}")
            self.cells_ = self.classes_.astype(np.int64)
            y_cell = y.astype(np.int64)
        F = self._cell_features(X)  # (n, cells, C)
        rows = F.reshape(-1, F.shape[-1])
        target = (np.arange(n_cells)[None, :] == y_cell[:, None]).reshape(-1).astype(np.int64)
        self.scaler_ = StandardScaler().fit(rows)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(self.scaler_.transform(rows), target)
        self.coef_ = self.model_.coef_.copy()
        self.intercept_ = self.model_.intercept_.copy()
        self.n_iter_ = self.model_.n_iter_.copy()
        return self

    def cell_scores(self, X) -> np.ndarray:
        """Logistic score of every cell (n_samples, n_cells)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        F = self._cell_features(X)
        z = self.scaler_.transform(F.reshape(-1, F.shape[-1])) @ self.coef_[0] + self.intercept_[0]
        return z.reshape(F.shape[0], F.shape[1])

    def decision_function(self, X):
        """Scores of the training classes (n_samples, n_classes); for two classes the
        difference (n_samples,), positive for ``classes_[1]`` (scikit-learn's convention)."""
        scores = self.cell_scores(X)[:, self.cells_]
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict(self, X):
        """The highest-scoring cell among ``classes_`` (n_samples,)."""
        scores = self.cell_scores(X)[:, self.cells_]
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # one shared C+1-parameter score per position cannot fit the checks' arbitrary
        # blobs as well as a full classifier: that is the point of the readout
        tags.classifier_tags.poor_score = True
        return tags


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Score:
    """Held-out accuracy (or R^2 for regressors) with its 95% Wilson interval."""

    accuracy: float
    ci_low: float
    ci_high: float
    n_test: int


def split(n: int, test_size: float = 0.25, seed: int = 0, stratify=None) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of a fixed, seeded split (stratified when possible)."""
    idx = np.arange(n)
    try:
        return tuple(train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify))
    except ValueError:  # a class with a single member cannot be stratified
        return tuple(train_test_split(idx, test_size=test_size, random_state=seed))


def holdout_score(estimator, X, y, train_idx, test_idx) -> tuple[Score, BaseEstimator]:
    """Fit a fresh clone on train rows, score on test rows; (Score, fitted estimator)."""
    from sklearn.base import clone

    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape[0] == 0:
        raise ProbeError("cannot probe an empty dataset (0 samples)")
    model = clone(estimator).fit(X[train_idx], y[train_idx])
    if isinstance(model, ClassifierMixin):
        correct = int((model.predict(X[test_idx]) == y[test_idx]).sum())
        lo, hi = wilson_interval(correct, len(test_idx))
        return Score(correct / len(test_idx), lo, hi, len(test_idx)), model
    r2 = float(model.score(X[test_idx], y[test_idx]))
    return Score(r2, float("nan"), float("nan"), len(test_idx)), model


def grouped_score(estimator, X, y, groups, n_splits: int = 5) -> tuple[Score, np.ndarray]:
    """Cross-validated accuracy with whole groups held out (``GroupKFold``): every sample is
    predicted once by a probe fitted without its group (a level: its line and gem frames stay
    together, so no probe is scored on the twin of a frame it saw); Wilson interval over all.
    Also returns the held-out class probabilities (n_samples, n_classes), for a graded score."""
    from sklearn.model_selection import GroupKFold

    X, y, groups = np.asarray(X), np.asarray(y), np.asarray(groups)
    k = min(int(n_splits), len(np.unique(groups)))
    if k < 2:
        raise ProbeError(f"held-out groups need at least two distinct groups, got {len(np.unique(groups))}")
    classes = np.unique(y)
    proba = np.zeros((len(y), len(classes)))
    correct = 0
    for tr, te in GroupKFold(n_splits=k).split(X, y, groups):
        score, model = holdout_score(estimator, X, y, tr, te)
        correct += round(score.accuracy * score.n_test)
        proba[np.ix_(te, np.searchsorted(classes, model.classes_))] = model.predict_proba(X[te])
    lo, hi = wilson_interval(correct, len(y))
    return Score(correct / len(y), lo, hi, len(y)), proba


def information_bits(proba: np.ndarray, y) -> float:
    """Bits of a binary label a probe's held-out probabilities recover: 1 - log loss / ln 2 for
    balanced classes (1: certain and right, 0: no better than a coin, negative: confidently wrong).
    Graded where accuracy saturates at 1."""
    y = np.asarray(y)
    classes = np.unique(y)
    p = np.clip(proba[np.arange(len(y)), np.searchsorted(classes, y)], 1e-12, 1.0)
    return float(1.0 + np.mean(np.log2(p)))
