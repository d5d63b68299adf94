"""scikit-learn's estimator checks on every estimator of amrlearn.

Add an estimator with quick-to-fit settings to ``ESTIMATORS``, and the checks it cannot
pass, each with its reason, to ``EXPECTED_FAILED_CHECKS`` under its class name.
"""

import pytest
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from amrlearn.linear_model import AMRLogisticRegression
from amrlearn.svm import HardMarginSVC

ESTIMATORS = [
    HardMarginSVC(),
    AMRLogisticRegression(tol=1e-3),
]

# These checks fit on random or overlapping blobs that are not linearly separable, where no
# hard-margin SVM exists: HardMarginSVC raises its "not linearly separable" ValueError, as
# it must. tests/test_svm.py checks the same behaviours on separable data.
_NOT_SEPARABLE_CHECKS = (
    "check_classifier_data_not_an_array",
    "check_classifiers_train",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_nan_inf",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_supervised_y_2d",
)
_NOT_SEPARABLE = (
    "fits on data that are not linearly separable; the hard margin does not exist there "
    "and HardMarginSVC raises its 'not linearly separable' ValueError"
)
EXPECTED_FAILED_CHECKS = {
    "HardMarginSVC": {
        **{check: _NOT_SEPARABLE for check in _NOT_SEPARABLE_CHECKS},
        # These fit random sparse data; sklearn wraps the separability error in an
        # AssertionError about sparse support. tests/test_sparse.py fits sparse separable data.
        **{
            check: _NOT_SEPARABLE
            for check in (
                "check_estimator_sparse_tag",
                "check_estimator_sparse_array",
                "check_estimator_sparse_matrix",
            )
        },
    },
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check_name", _NOT_SEPARABLE_CHECKS)
def test_hard_margin_expected_failures_are_the_separability_error(check_name):
    # The expected failures above fail for the stated reason, and no other.
    check = getattr(estimator_checks, check_name)
    with pytest.raises(ValueError, match="not linearly separable"):
        check("HardMarginSVC", HardMarginSVC())
