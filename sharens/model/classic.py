"""Classic scikit-learn baselines, re-run on exactly the splits the networks see."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.svm import SVC, LinearSVC

# the estimators whose solver stops at an iteration cap, and their caps (the others run to their tolerance or,
# a forest, have no iterative solver); a cell's spec carries its cap. SGD's linear SVM on CIFAR-10 meets its
# tolerance after about 155 epochs (4,000 images)
MAX_ITER = {"logistic_regression": 2000, "svm_linear": 5000, "svm_linear_sgd": 1000}


def build_classic(name: str, seed: int, forest_trees: int, max_iter: int | None, threads: int):
    """A fresh, seeded estimator, capped at `max_iter` iterations where it has a cap (a spec's, from `MAX_ITER`),
    on the cell's `threads` (a forest's trees would otherwise take every core, beside the other cells of a run);
    inputs are already standardized by the data layer."""
    factories = {
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=forest_trees, n_jobs=threads, random_state=seed
        ),
        "logistic_regression": lambda: LogisticRegression(max_iter=max_iter, random_state=seed),
        "svm_rbf": lambda: SVC(kernel="rbf", random_state=seed),
        "svm_linear": lambda: LinearSVC(max_iter=max_iter, random_state=seed),
        # the same hinge-loss linear SVM fitted by SGD: liblinear takes minutes on a few hundred dense images
        "svm_linear_sgd": lambda: SGDClassifier(loss="hinge", max_iter=max_iter, tol=1e-3, random_state=seed),
    }
    if name not in factories:
        raise ValueError(f"unknown classic model {name!r}; known: {sorted(factories)}")
    return factories[name]()


def fit_classic(estimator, x: np.ndarray, y: np.ndarray, max_iter: int | None) -> dict | None:
    """Fit `estimator` (built by `build_classic`). For one whose solver has an iteration cap, `max_iter`, returns
    what the solver did, {`iterations`, `max_iter`, `converged`}: not converged when scikit-learn warned that the
    cap stopped it before its tolerance, a classic row's counterpart of an under-trained network. None for others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, y)
    stopped = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        if w not in stopped:  # not ours to judge: shown as scikit-learn would have shown it
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if max_iter is None:
        return None
    return {"iterations": int(np.max(estimator.n_iter_)), "max_iter": max_iter, "converged": not stopped}
