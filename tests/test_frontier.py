"""The cost-robustness frontier experiment, end to end on a micro configuration."""

import json

import numpy as np
import pytest
from test_experiments import _micro, _mnist_home

from amrlearn.experiments import frontier
from amrlearn.experiments._methods import get_method
from amrlearn.experiments._recipe import plan_cell
from amrlearn.plotting._frontier import pareto_front


def test_configs_and_refusals():
    quick, medium = frontier.default_config("quick"), frontier.default_config("medium")
    full = frontier.default_config("full")
    assert quick["models"] == medium["models"] == ["LeNetSmall"] and full["models"] == ["CNN"]
    assert medium["n_train"] is None and medium["distance"]["n_points"] == 1000
    assert medium["pgd"]["n_points"] == 1000 and full["n_train"] is None
    assert set(frontier.METHODS) <= set(quick["methods"])
    with pytest.raises(ValueError, match="quick, medium, full"):
        frontier.default_config("huge")
    # every method trains LeNetSmall, so the medium run has all of them
    assert len(frontier._cells(medium)) == len(frontier.METHODS)
    # MMR cannot train the max-pooling CNN: left out, with the reason in the summary
    cells = frontier._cells(full)
    assert ("mnist", "CNN", "MMR") not in cells and ("mnist", "CNN", "DD") in cells


@pytest.mark.parametrize("method", frontier.METHODS)
def test_every_frontier_method_resolves_to_a_plan(method):
    plan = plan_cell("mnist", "LeNetSmall", method, frontier.default_config("quick"))
    assert plan.distance["n_points"] == 200
    json.dumps(dict(plan.params))  # plain JSON in results.json
    assert get_method(method).step_cost(plan.params, plan.batch_size) >= 1.0


def test_pareto_front_is_the_undominated_set():
    rng = np.random.default_rng(0)
    pts = [
        {"method": str(i), "cost": c, "r": r} for i, (c, r) in enumerate(rng.uniform(size=(30, 2)))
    ]
    front = pareto_front(pts, "r")
    for p in pts:
        dominated = any(
            q["cost"] <= p["cost"]
            and q["r"] >= p["r"]
            and (q["cost"], q["r"]) != (p["cost"], p["r"])
            for q in pts
        )
        assert (p in front) != dominated
    assert [p["cost"] for p in front] == sorted(p["cost"] for p in front)
    assert pareto_front([{"method": "x", "cost": 1.0, "r": None}], "r") == []


def test_frontier_runs_end_to_end(tmp_path):
    home = _mnist_home(tmp_path)
    cfg = _micro(
        frontier.default_config("quick"),
        home,
        methods=["Std", "soft-min AMR", "input margin", "AMR + FGSM-RS (clean)"],
        epochs=2,
        distance={"n_points": 8, "steps": 5},
    )
    res = frontier.run(cfg, tmp_path / "fr")
    assert set(res["cells"]) == {f"mnist/LeNetSmall/{m}" for m in cfg["methods"]}
    for key, cell in res["cells"].items():
        for field in ("clean", "robust", "eps", "mean_distance", "median_distance", "cost"):
            assert field in cell, (key, field)
        assert len(cell["history"]["cpu"]) == 2 and cell["n_distance_points"] == 8
        if cell["mean_distance"] is not None:
            assert cell["mean_distance"] >= 0 and cell["median_distance"] >= 0
    assert res["cells"]["mnist/LeNetSmall/Std"]["cost"] == 1.0
    assert res["cells"]["mnist/LeNetSmall/soft-min AMR"]["params"]["penalty"] == (
        "SoftMinMarginPenalty"
    )
    # the cost is in the file too, not only in the returned dict
    on_disk = json.loads((tmp_path / "fr" / "results.json").read_text())
    assert on_disk["cells"]["mnist/LeNetSmall/input margin"]["cost"] > 0
    text = frontier.summarize(res)
    assert "Front by mean distance" in text and "Target (mean distance >= 2.3" in text
    assert "MMA's table" in text and "| soft-min AMR |" in text
    assert [p.name for p in frontier.plot(res, tmp_path / "fr")] == ["frontier.png"]
