"""The ``amrlearn`` command. It only parses arguments and calls the experiments.

Usage::

    amrlearn demo [--out DIR] [--data-home DIR]
    amrlearn reproduce {figure1,table1,table2,figures} [--quick|--medium|--full] [--device cpu|cuda]
                       [--out DIR] [--data-home DIR] [--seed N] [--jobs N]

Each experiment is a module of :mod:`amrlearn.experiments` with ``default_config(mode)``,
``run(config, out_dir) -> dict`` (which writes ``results.json`` cell by cell and resumes),
``plot(results, out_dir) -> list of paths`` and ``summarize(results) -> str``;
:func:`amrlearn.experiments.run_experiment` runs one of them.

A user's mistake (a missing data home, an output folder that is a file, CUDA asked for
where there is none, results of another configuration in the output folder) prints one
line to stderr and exits with status 1 (2 for bad arguments), without a traceback.
"""

import argparse
import sys

from .experiments import EXPERIMENTS

#: Exit status of a user error found while running (argparse uses 2 for bad arguments).
_EXIT_USER_ERROR = 1
_EXIT_BAD_ARGUMENT = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
_EXIT_INTERRUPTED = 130


#: What each scale is, and what it took (docs/reproduction.md keeps the measurements).
_REPRODUCE_SCALES = """scales:
  --quick  subsets of MNIST, few epochs, short attacks: for a 2-core CPU. Measured there:
           figure1 about 0.5 min, table1 about 13 min, table2 about 9 min, figures about
           12 min (CIFAR-10 cells are skipped when CIFAR-10 is not in the data home).
  --full   Appendix F's protocol (all of MNIST and CIFAR-10, 200 epochs, PGD 1000 x 0.01):
           hours per table on one GPU; the run prints its own time estimate first.
  --medium table1 only: all 60,000 MNIST training images, 30 (MLP) and 15 (CNN) epochs,
           the strong evaluation on 1,000 test points: about 5 CPU-core hours, most of
           it the CNN's evaluation (about 3 hours on 2 cores with --jobs 2)."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wide enough that every command and option fits on one line with its help."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=28, width=100)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="amrlearn",
        description="Minimum vs. average margin (Wu & Yu): the demo and the paper's experiments.",
        epilog="Options of a command: 'amrlearn demo --help', 'amrlearn reproduce --help'.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,reproduce}", title="commands"
    )

    demo = sub.add_parser(
        "demo",
        help="Figure 1 (quick), then exact margins of SVM, LR and AMR (make demo)",
        description="Figure 1 in quick mode, then the exact-margin report of a hard-margin "
        "SVM, a logistic regression and AMRLogisticRegression on MNIST 0 vs 1 (scikit-learn's "
        "digits without MNIST).",
    )
    demo.add_argument("--out", default="amrlearn_output/demo", help="output folder")
    demo.add_argument("--data-home", default=None, help="data home (else $AMRLEARN_DATA)")

    rep = sub.add_parser(
        "reproduce",
        help="regenerate a figure or table of the paper: " + ", ".join(EXPERIMENTS),
        formatter_class=_Formatter,
        description="Regenerate a figure or table of the paper; results resume when rerun.",
        epilog=_REPRODUCE_SCALES,
    )
    rep.add_argument("experiment", choices=EXPERIMENTS)
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="small scale, for a 2-core CPU in minutes (the default)",
    )
    mode.add_argument(
        "--medium",
        dest="mode",
        action="store_const",
        const="medium",
        help="table1 on all of MNIST, for a CPU in hours (--jobs 2 on 2 cores)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="the paper's protocol (needs a GPU)",
    )
    rep.set_defaults(mode="quick")
    rep.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    rep.add_argument("--out", default=None, help="output folder (default amrlearn_output/<name>)")
    rep.add_argument("--data-home", default=None, help="data home (else $AMRLEARN_DATA)")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="cells trained at once, one process each (not figure1); 2 on a 2-core CPU",
    )
    rep.add_argument("--verbose", type=int, default=1)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fail(message, status):
    print(f"amrlearn: error: {message}", file=sys.stderr)
    return status


def _check_device(device):
    """The error line for a device that cannot be used here, else ``None``."""
    from .utils import resolve_device

    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: a malformed device string
        return f"--device {device}: {exc}"
    return None


def _check_mode(experiment, mode):
    """The error line for a scale that ``experiment`` does not have, else ``None``."""
    from .experiments import experiment_modes

    modes = experiment_modes(experiment)
    if mode not in modes:
        return f"--{mode}: {experiment} has only " + ", ".join(f"--{m}" for m in modes)
    return None


def main(argv=None):
    """Entry point of the ``amrlearn`` command; returns the exit status."""
    from .datasets import DatasetNotFoundError
    from .experiments import run_experiment
    from .experiments._common import ResultsMismatchError

    args = _build_parser().parse_args(argv)
    if args.command == "reproduce":
        problem = _check_device(args.device) or _check_mode(args.experiment, args.mode)
        if problem:
            return _fail(problem, _EXIT_BAD_ARGUMENT)
    # An application may choose the backend: the command only writes PNG files.
    import matplotlib

    matplotlib.use("Agg")
    try:
        if args.command == "demo":
            from .experiments import demo

            demo.main(out=args.out, data_home=args.data_home)
        else:
            run_experiment(
                args.experiment,
                mode=args.mode,
                device=args.device,
                out=args.out,
                data_home=args.data_home,
                seed=args.seed,
                verbose=args.verbose,
                n_jobs=args.jobs,
            )
    except (NotADirectoryError, FileExistsError) as exc:
        return _fail(f"--out: {exc}", _EXIT_BAD_ARGUMENT)
    except (DatasetNotFoundError, ResultsMismatchError) as exc:
        return _fail(str(exc), _EXIT_USER_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted; rerun the same command to resume.", _EXIT_INTERRUPTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
