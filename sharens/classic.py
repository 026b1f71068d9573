"""Classic scikit-learn baselines, re-run on exactly the splits the networks see."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.svm import SVC, LinearSVC


def build_classic(name: str, seed: int, forest_trees: int):
    """A fresh, seeded estimator; inputs are already standardized by the data layer."""
    factories = {
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=forest_trees, n_jobs=-1, random_state=seed
        ),
        "logistic_regression": lambda: LogisticRegression(max_iter=2000, random_state=seed),
        "svm_rbf": lambda: SVC(kernel="rbf", random_state=seed),
        "svm_linear": lambda: LinearSVC(max_iter=5000, random_state=seed),
        # the same hinge-loss linear SVM fitted by SGD: liblinear takes minutes on a few hundred dense images
        "svm_linear_sgd": lambda: SGDClassifier(loss="hinge", max_iter=50, tol=1e-3, random_state=seed),
    }
    if name not in factories:
        raise ValueError(f"unknown classic model {name!r}; known: {sorted(factories)}")
    return factories[name]()
