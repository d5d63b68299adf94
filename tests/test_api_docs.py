"""The API pages parse: every entry of a Parameters section is a parameter."""

import re

import pytest

from amrlearn import neural

docscrape = pytest.importorskip("numpydoc.docscrape")

NAME = re.compile(r"^(\*\*)?[A-Za-z_]\w*$")
NETS = [
    neural.AMRNeuralNetClassifier,
    neural.AdversarialNeuralNetClassifier,
    neural.DeepDefenseNeuralNetClassifier,
    neural.MMRNeuralNetClassifier,
    neural.GloRoNeuralNetClassifier,
    neural.RegularizedNeuralNetClassifier,
]


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_net_parameters_are_names(cls):
    doc = docscrape.ClassDoc(cls)
    names = [part.strip() for p in doc["Parameters"] for part in p.name.split(",")]
    assert names and all(NAME.match(n) for n in names), [n for n in names if not NAME.match(n)]
    # the paragraph on input types sits in the Notes, where it renders as text
    assert any("``X`` may be a numpy array" in line for line in doc["Notes"])
