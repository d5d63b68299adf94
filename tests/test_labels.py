"""Labels are encoded in one place, utils/_labels.py, for metrics, attacks and the nets."""

import numpy as np
import pytest
import torch

from amrlearn.neural._data import encode_labels
from amrlearn.utils._labels import label_index


@pytest.mark.parametrize("classes", [[7, 3], ["dog", "cat"], [1, 1, 2]])
def test_unsorted_or_repeated_classes_are_refused(classes):
    # Fails before the labels had one home: label_index answered with the codes of a
    # sorted search in unsorted classes, a silent wrong answer.
    with pytest.raises(ValueError, match="sorted and distinct"):
        label_index(np.array(classes), [classes[0]])


@pytest.mark.parametrize(
    "classes, y",
    [
        ([3, 7], [7, 3, 7]),
        (["cat", "dog"], np.array(["dog", "cat"])),
        ([0.5, 2.0], torch.tensor([2.0, 0.5])),
    ],
)
def test_the_nets_encode_labels_as_the_metrics_do(classes, y):
    codes = encode_labels(classes, y)
    expected = np.searchsorted(np.asarray(classes), np.asarray(y))
    np.testing.assert_array_equal(codes, expected)
    assert codes.dtype == np.int64
    y_np = y.numpy() if isinstance(y, torch.Tensor) else y
    np.testing.assert_array_equal(label_index(np.asarray(classes), y_np), codes)


def test_unseen_label_names_the_label_and_the_classes():
    for encode in (label_index, encode_labels):
        with pytest.raises(
            ValueError, match=r"not seen during fit: \[5\]; the classes are \[3, 7\]"
        ):
            encode(np.array([3, 7]), [3, 5])
    with pytest.raises(ValueError, match="1-dimensional"):
        encode_labels([3, 7], [[3]])
