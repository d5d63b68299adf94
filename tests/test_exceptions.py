"""Every public error and warning of amrlearn is defined in amrlearn.exceptions."""

import ast
import importlib
from pathlib import Path

import pytest

import amrlearn.exceptions as exceptions

ROOT = Path(__file__).resolve().parents[1] / "amrlearn"

# Where each class was defined before it moved; it stays importable from there.
OLD_HOMES = {
    "CheckpointError": ["amrlearn.neural", "amrlearn.neural._checkpoint"],
    "ChecksumError": ["amrlearn.datasets", "amrlearn.datasets._base"],
    "DatasetNotFoundError": ["amrlearn.datasets", "amrlearn.datasets._base"],
    "NotCertifiableError": ["amrlearn.metrics._chain"],
    "ResultsMismatchError": ["amrlearn.experiments._common"],
}


def test_no_error_or_warning_class_is_defined_outside_exceptions():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                if any(b.endswith(("Error", "Warning", "Exception")) for b in bases):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.name}")
    assert found and all(f.startswith("amrlearn/exceptions.py:") for f in found), found


def test_exceptions_exports_every_class_it_defines():
    defined = {
        name
        for name, obj in vars(exceptions).items()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    assert set(exceptions.__all__) == defined
    assert set(OLD_HOMES) | {"EvaluationWarning"} == defined


@pytest.mark.parametrize("name", sorted(OLD_HOMES))
def test_old_locations_re_export_the_same_class(name):
    for module in OLD_HOMES[name]:
        assert getattr(importlib.import_module(module), name) is getattr(exceptions, name)
    assert getattr(exceptions, name).__module__ == "amrlearn.exceptions"


def test_errors_keep_their_builtin_bases():
    assert issubclass(exceptions.DatasetNotFoundError, FileNotFoundError)
    for name in ("CheckpointError", "ChecksumError", "NotCertifiableError", "ResultsMismatchError"):
        assert issubclass(getattr(exceptions, name), ValueError)
    assert issubclass(exceptions.EvaluationWarning, UserWarning)


def test_a_raised_checkpoint_error_is_the_one_of_exceptions(tmp_path):
    from amrlearn.neural import load_checkpoint

    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(exceptions.CheckpointError):
        load_checkpoint("MLP:hidden=16", bad)
