"""The ``amrlearn`` command. It only parses arguments and calls the experiments.

Usage::

    amrlearn demo [--out DIR]
    amrlearn reproduce {figure1,table1,table2,figures} [--quick|--full] [--device cpu|cuda]
                       [--out DIR] [--data-home DIR] [--seed N]

Each experiment is a module of :mod:`amrlearn.experiments` with ``default_config(mode)``,
``run(config, out_dir) -> dict`` (which writes ``results.json`` cell by cell and resumes),
``plot(results, out_dir) -> list of paths`` and ``summarize(results) -> str``.
"""

import argparse
import importlib
import sys
from pathlib import Path

EXPERIMENTS = ("figure1", "table1", "table2", "figures")


def _build_parser():
    parser = argparse.ArgumentParser(prog="amrlearn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job on the bundled default data")
    demo.add_argument("--out", default="amrlearn_output/demo", help="output folder")
    demo.add_argument("--data-home", default=None)

    rep = sub.add_parser("reproduce", help="regenerate a figure or table of the paper")
    rep.add_argument("experiment", choices=EXPERIMENTS)
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small scale, for a 2-core CPU in minutes (the default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the paper's protocol (needs a GPU)")
    rep.set_defaults(mode="quick")
    rep.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    rep.add_argument("--out", default=None, help="output folder (default amrlearn_output/<name>)")
    rep.add_argument("--data-home", default=None, help="data home (else $AMRLEARN_DATA)")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--verbose", type=int, default=1)
    return parser


def run_experiment(name, *, mode="quick", device="cpu", out=None, data_home=None, seed=0,
                   verbose=1):
    """Run experiment ``name`` and write its results, pictures and table under ``out``.

    Returns
    -------
    results : dict
    """
    exp = importlib.import_module(f"amrlearn.experiments.{name}")
    config = exp.default_config(mode)
    config.update(device=device, data_home=data_home, seed=seed, verbose=verbose)
    out_dir = Path(out or f"amrlearn_output/{name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = exp.run(config, out_dir)
    paths = exp.plot(results, out_dir)
    text = exp.summarize(results)
    (out_dir / "summary.md").write_text(text + "\n")
    print(text)
    print(f"\nresults: {out_dir / 'results.json'}")
    for p in paths:
        print(f"picture: {p}")
    return results


def main(argv=None):
    """Entry point of the ``amrlearn`` command."""
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        from .experiments import demo

        demo.main(out=args.out, data_home=args.data_home)
        return 0
    run_experiment(args.experiment, mode=args.mode, device=args.device, out=args.out,
                   data_home=args.data_home, seed=args.seed, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
