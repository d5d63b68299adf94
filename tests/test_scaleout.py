"""Model selection on a dask cluster: GridSearchCV under joblib's "dask" backend.

A grid over tau and lam is many independent fits; joblib hands them to whatever backend
is active. The test starts a local dask cluster (two in-process workers, no dashboard, no
network), runs the grid there with ``n_jobs=-1`` and checks that every cross-validated
score and the chosen parameters equal those of the serial run.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from amrlearn import AMRLogisticRegression
from amrlearn.metrics import margin_report

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _digits():
    X, y = load_digits(n_class=2, return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _search(n_jobs):
    return GridSearchCV(
        AMRLogisticRegression(max_iter=20),
        {"tau": [1.0, 5.0], "lam": [0.0, 0.1, 1.0]},
        scoring=margin_report,
        refit="avg_margin",
        cv=3,
        n_jobs=n_jobs,
    )


def test_grid_search_on_dask_equals_serial(client):
    import joblib

    X, y = _digits()
    serial = _search(n_jobs=None).fit(X, y)
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        on_dask = _search(n_jobs=-1).fit(X, y)

    # The fits did run as tasks on the cluster's workers.
    assert {task["worker"] for task in stream.data} <= set(client.scheduler_info()["workers"])
    assert len(stream.data) > 0, "no task ran on the dask cluster"
    assert on_dask.best_params_ == serial.best_params_
    for key in ("mean_test_accuracy", "mean_test_avg_margin", "mean_test_min_margin"):
        np.testing.assert_allclose(on_dask.cv_results_[key], serial.cv_results_[key], rtol=1e-10)
    np.testing.assert_allclose(
        on_dask.best_estimator_.coef_, serial.best_estimator_.coef_, rtol=1e-10
    )


def test_neural_grid_search_on_dask_equals_serial(client):
    # A tiny net. The module is passed as an instance: every clone deep-copies it, so
    # each fit starts from the same weights whatever the order in which the workers run
    # them, and (no shuffling, no dropout) trains deterministically.
    import joblib
    import torch

    from amrlearn.metrics import make_margin_report
    from amrlearn.neural import AMRNeuralNetClassifier, models

    torch.manual_seed(0)
    X, y = _digits()
    net = AMRNeuralNetClassifier(
        models.MLP(X.shape[1], hidden=16, n_classes=2),
        max_epochs=3,
        lr=0.1,
        batch_size=64,
        verbose=0,
    )
    scoring = make_margin_report(
        upper=False, bound_params={"n_batches": 1, "batch_size": 8, "random_state": 0}
    )

    def search(n_jobs):
        return GridSearchCV(
            net,
            {"lam": [0.0, 0.1], "tau": [1.0]},
            scoring=scoring,
            refit="avg_margin",
            cv=2,
            n_jobs=n_jobs,
        )

    serial = search(None).fit(X, y)
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        on_dask = search(-1).fit(X, y)
    assert len(stream.data) > 0, "no task ran on the dask cluster"
    assert on_dask.best_params_ == serial.best_params_
    for key in ("mean_test_accuracy", "mean_test_avg_margin"):
        np.testing.assert_allclose(on_dask.cv_results_[key], serial.cv_results_[key], rtol=1e-6)
