"""The order of the gallery: the paper's argument, not the alphabet."""

ORDER = [
    "plot_margin_tradeoff.py",
    "plot_margin_histograms.py",
    "plot_closest_adversarial_examples.py",
    "plot_grid_search_tau_lambda.py",
    "plot_amr_mlp_robust_accuracy.py",
    "plot_margin_bracket.py",
    "plot_robustness_curve.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``: ``ORDER`` first, then
    any other example by file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        rank = ORDER.index(filename) if filename in ORDER else len(ORDER)
        return (rank, filename)
