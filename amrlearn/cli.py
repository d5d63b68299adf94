"""The ``amrlearn`` command. It only parses arguments and calls the experiments.

Usage::

    amrlearn demo [--out DIR] [--data-home DIR] [--download | --no-download]
    amrlearn reproduce {figure1,table1,table2,figures,certified,frontier} [--quick|--medium|--full]
                       [--device cpu|cuda|auto] [--allow-cpu] [--out DIR] [--data-home DIR]
                       [--seed N] [--jobs N] [--verbose [N]] [--datasets NAME ...]
    amrlearn evaluate --model SPEC --weights PATH [--data mnist|fashion-mnist|cifar10|FILE.npz]
                      [--n-points N] [--eps E ...] [--attack A ...] [--out DIR] [...]

Each experiment is a module of :mod:`amrlearn.experiments` with ``default_config(mode)``,
``run(config, out_dir) -> dict`` (which writes ``results.json`` cell by cell and resumes),
``plot(results, out_dir) -> list of paths`` and ``summarize(results) -> str``;
:func:`amrlearn.experiments.run_experiment` runs one of them.

A user's mistake (a missing data home, an output folder that is a file, CUDA asked for
where there is none, results of another configuration in the output folder) prints one
line to stderr and exits with status 1 (2 for bad arguments), without a traceback. So does
what the command will not start: a GPU-scale ``--full`` run on the CPU (unless
``--allow-cpu``), and ``--jobs`` for Figure 1, which runs in one process.
"""

import argparse
import re
import sys

from .experiments import EXPERIMENTS

#: Exit status of a user error found while running (argparse uses 2 for bad arguments).
_EXIT_USER_ERROR = 1
_EXIT_BAD_ARGUMENT = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
_EXIT_INTERRUPTED = 130
#: The experiments whose ``--full`` scale needs a GPU (Figure 1 is numpy on the CPU).
_GPU_SCALE = ("table1", "table2", "figures", "certified", "frontier")
#: The experiments that have a ``--medium`` scale (a CPU's, in hours).
_MEDIUM = ("table1", "certified", "frontier")
#: ``--verbose`` without a number: the progress bars (every level above 0 shows them).
_VERBOSE_BARE = 1


#: What each scale is, and what it took (docs/reproduction.md keeps the measurements).
_REPRODUCE_SCALES = """scales:
  --quick  subsets of MNIST, few epochs, short attacks: for a 2-core CPU. Measured there:
           figure1 about 0.5 min, table1 about 13 min, table2 about 9 min, figures about
           12 min (CIFAR-10 cells are skipped when CIFAR-10 is not in the data home).
  --full   Appendix F's protocol (all of MNIST and CIFAR-10, 200 epochs, PGD 1000 x 0.01):
           hours per table on one GPU, weeks on a CPU, so table1, table2 and figures refuse
           the CPU unless --allow-cpu is given; the run prints its own time estimate
           first. figure1 --full (the margins at each of the 1000 epochs) runs in numpy
           on the CPU: about 40 s of one core on MNIST 0 vs 1.
  --medium table1: all 60,000 MNIST training images, 30 (MLP) and 15 (CNN) epochs,
           the strong evaluation on 1,000 test points: about 2.1 CPU-core hours,
           measured 65 min on 2 cores with --jobs 2.
           certified --medium: the MLP and LeNetSmall on all of MNIST, about 45 and 75
           CPU-core minutes. frontier --medium: LeNetSmall on all of MNIST, 15 epochs
           for each of 12 methods, 76 CPU-core minutes (PGD-AT 9x Std, MMR 28x);
           frontier --quick: LeNetSmall on 10,000 images; frontier --full: the CNN."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wide enough that every command and option fits on one line with its help."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=28, width=100)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="amrlearn",
        description="Minimum vs. average margin (Wu & Yu): the demo and the paper's experiments.",
        epilog="Options of a command: 'amrlearn demo --help', 'amrlearn reproduce --help', "
        "'amrlearn evaluate --help'.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,reproduce,evaluate}", title="commands"
    )

    demo = sub.add_parser(
        "demo",
        help="Figure 1 (quick), then exact margins of SVM, LR and AMR (make demo)",
        description="Figure 1 in quick mode, then the exact-margin report of a hard-margin "
        "SVM, a logistic regression and AMRLogisticRegression on MNIST 0 vs 1 (scikit-learn's "
        "digits without MNIST).",
        formatter_class=_Formatter,
    )
    demo.add_argument(
        "--out", default="amrlearn_output/demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument("--data-home", default=None, help=_DATA_HOME_HELP)
    demo.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fetch MNIST (about 12 MB, checksummed) into the data home when it is missing, "
        "without asking; --no-download never fetches it (default: ask when run from a "
        "terminal, else do not fetch)",
    )

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
        help="table1, certified and frontier on all of MNIST, for a CPU in hours (--jobs 2)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="the paper's protocol (a GPU, except for figure1)",
    )
    rep.set_defaults(mode="quick")
    rep.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda (or cuda:N) or auto: cuda when there is one; figure1 runs on the CPU "
        "whatever this says (default: %(default)s)",
    )
    rep.add_argument(
        "--allow-cpu",
        action="store_true",
        help="run --full of table1, table2 or figures on the CPU anyway (it takes weeks)",
    )
    rep.add_argument("--out", default=None, help="output folder (default: amrlearn_output/<name>)")
    rep.add_argument("--data-home", default=None, help=_DATA_HOME_HELP)
    rep.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the data subsets, the initializations, the batch order and the attacks "
        "(default: %(default)s)",
    )
    rep.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="cells trained at once, one process each (not figure1); 2 on a 2-core CPU "
        "(default: %(default)s)",
    )
    rep.add_argument(
        "--verbose",
        type=_verbosity,
        nargs="?",
        const=_VERBOSE_BARE,
        default=1,
        metavar="N",
        help="progress bars: 0 hides them, 1 (or a bare --verbose) shows them "
        "(default: %(default)s)",
    )
    rep.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        metavar="NAME",
        help="table1 and figures: run these datasets instead of the scale's: mnist, "
        "fashion-mnist (not in the paper; Debian's dataset-fashion-mnist), cifar10; "
        "--medium takes mnist and fashion-mnist (default: the scale's, MNIST and CIFAR-10; "
        "--medium MNIST)",
    )
    _add_evaluate(sub)
    return parser


_DATA_HOME_HELP = (
    "folder holding mnist/ and cifar-10-batches-py/ (default: $AMRLEARN_DATA, else ~/amrlearn_data)"
)

_EVALUATE_EPILOG = """model specs:
  a model of the zoo (LR, MLP, CNN, LeNet, LeNetSmall, ConvNet) with options after a colon: CNN,
  MLP:hidden=1024, CNN:dropout=0.5,n_classes=10 (in_features and dataset come from the data);
  or an import path, package.module:Class or package.module:Class:width=64. Leave --model out
  for a file that holds a whole module.
weights: a state dict, a dict holding one (state_dict, model_state_dict, model), keys under a
  module., net. or model. prefix, a whole pickled module (--trust-pickle), or TorchScript.
  Names that differ from the model's are matched by order and shape, else refused."""


def _add_evaluate(sub):
    ev = sub.add_parser(
        "evaluate",
        help="clean and robust accuracy (the paper's PGD and auto), the masking alarm and the "
        "robustness curve of any trained model",
        description="Evaluate a trained model: clean accuracy, the paper's l2 PGD and the "
        "strong 'auto' robust accuracy on an eps grid with the gradient-masking alarm, and the "
        "robustness curve with its bracket; writes results.json, summary.md and "
        "robustness_curve.png.",
        formatter_class=_Formatter,
        epilog=_EVALUATE_EPILOG,
    )
    ev.add_argument("--model", default=None, metavar="SPEC", help="the architecture (see below)")
    ev.add_argument("--weights", required=True, metavar="PATH", help="the checkpoint file")
    ev.add_argument(
        "--data",
        default="mnist",
        metavar="NAME|FILE.npz",
        help="mnist, fashion-mnist, cifar10 (their test sets) or an .npz file with arrays X "
        "(in [0, 1], or uint8) and y (default: %(default)s)",
    )
    ev.add_argument(
        "--n-points",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="a random subset of this many test points (default: %(default)s)",
    )
    ev.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=None,
        metavar="E",
        help="l2 radii (default: the dataset's grid, 0.5 1 1.5 2 on MNIST and Fashion-MNIST, "
        "0.1 0.2 0.3 0.4 on CIFAR-10)",
    )
    ev.add_argument(
        "--attack",
        nargs="+",
        default=["pgd", "auto"],
        metavar="A",
        help="the chain: pgd (the paper's), auto (the strong one), apgd-ce, apgd-t, fmn, ... "
        "(default: pgd auto)",
    )
    ev.add_argument(
        "--steps", type=_positive_int, default=1000, metavar="N", help="PGD steps (default: 1000)"
    )
    ev.add_argument(
        "--step-size", type=float, default=0.01, metavar="S", help="PGD step (default: 0.01)"
    )
    ev.add_argument(
        "--curve-steps",
        type=_positive_int,
        default=100,
        metavar="N",
        help="steps of the curve's minimum-norm attacks (default: %(default)s)",
    )
    ev.add_argument(
        "--bound-samples",
        type=_positive_int,
        default=128,
        metavar="N",
        help="Theorem 3's sampled points per input, the curve's lower end (default: "
        "%(default)s; the paper's: 51200)",
    )
    ev.add_argument("--no-curve", action="store_true", help="skip the robustness curve")
    ev.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a whole pickled module: unpickling runs code from the file, so only for "
        "files you trust",
    )
    ev.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        metavar="N",
        help="points per batch of the attacks (default: 256)",
    )
    ev.add_argument("--device", default="cpu", help="cpu, cuda (or cuda:N) or auto (default: cpu)")
    ev.add_argument(
        "--seed", type=int, default=0, metavar="N", help="the subset and attacks' seed (default: 0)"
    )
    ev.add_argument(
        "--out", default="amrlearn_output/evaluate", help="output folder (default: %(default)s)"
    )
    ev.add_argument("--data-home", default=None, help=_DATA_HOME_HELP)
    ev.add_argument(
        "--verbose",
        type=_verbosity,
        default=1,
        metavar="N",
        help="0 hides the progress bars and the estimate (default: 1)",
    )


def _evaluate(args):
    """Run ``amrlearn evaluate``; returns the exit status. A checkpoint or data file that
    is missing or does not fit the model is the user's mistake: one line."""
    import warnings

    from .datasets import DatasetNotFoundError
    from .evaluation import evaluate_checkpoint
    from .exceptions import EvaluationWarning

    try:
        with warnings.catch_warnings():  # the summary lists the alarms
            warnings.simplefilter("ignore", EvaluationWarning)
            report = _run_evaluation(args, evaluate_checkpoint)
    except DatasetNotFoundError:
        raise  # main's one line
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError
        return _fail(str(exc), _EXIT_USER_ERROR)
    paths = report.save(args.out)
    print(report.summary())
    for path in paths:
        print(f"wrote {path}")
    return 0


def _run_evaluation(args, evaluate_checkpoint):
    return evaluate_checkpoint(
        args.model,
        args.weights,
        data=args.data,
        data_home=args.data_home,
        n_points=args.n_points,
        eps=args.eps,
        trust_pickle=args.trust_pickle,
        bound_samples=args.bound_samples,
        attack=args.attack,
        steps=args.steps,
        step_size=args.step_size,
        curve=not args.no_curve,
        curve_steps=args.curve_steps,
        batch_size=args.batch_size,
        device=args.device,
        random_state=args.seed,
        verbose=args.verbose,
    )


def _verbosity(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a level 0, 1, ..., got {text!r}")
    return value


def _bare_verbose(argv):
    """``argv`` with a bare ``--verbose`` written ``--verbose=1`` where the next word is no
    level (an experiment's name would otherwise be read as the level)."""
    argv = list(argv)
    for i, word in enumerate(argv[:-1]):
        if word == "--":
            break
        if word == "--verbose" and not re.fullmatch(r"-?\d+", argv[i + 1]):
            argv[i] = f"--verbose={_VERBOSE_BARE}"
    return argv


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

    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", device):
        return f"--device {device}: expected cpu, cuda (or cuda:N for one GPU of several) or auto."
    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        return f"--device {device}: {exc}"
    return None


def _check_scale(args):
    """The error line for a run this command will not start, else ``None``: a GPU-scale
    ``--full`` run on the CPU without ``--allow-cpu``, or ``--jobs`` for Figure 1."""
    from .utils import resolve_device

    if args.experiment == "figure1" and args.jobs > 1:
        return f"--jobs {args.jobs}: figure1 runs in one process; leave --jobs out."
    if args.mode == "full" and args.experiment in _GPU_SCALE and not args.allow_cpu:
        if resolve_device(args.device).type == "cpu":
            where = "CUDA is not available here" if args.device == "auto" else "--device cpu"
            smaller = "--medium or --quick" if args.experiment in _MEDIUM else "--quick"
            return (
                f"--full: {args.experiment} is sized for a GPU (all of the training data, "
                f"the paper's epochs or its CNN), but {where}: it would take days to weeks. "
                f"Use --device cuda on a GPU machine, {smaller}, or add --allow-cpu to run it "
                "anyway."
            )
    return None


def _check_datasets(args):
    """The error line for ``--datasets`` that the experiment cannot run, else ``None``."""
    from .experiments import experiment_datasets

    if args.datasets is None:
        return None
    if not experiment_datasets(args.experiment):
        return f"--datasets: {args.experiment} runs fixed datasets; leave --datasets out."
    import importlib

    exp = importlib.import_module(f"amrlearn.experiments.{args.experiment}")
    try:
        exp.default_config(args.mode, datasets=args.datasets)
    except ValueError as exc:
        return f"--datasets: {exc}"
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

    args = _build_parser().parse_args(_bare_verbose(sys.argv[1:] if argv is None else argv))
    if args.command == "evaluate" and args.device != "cpu":
        problem = _check_device(args.device)
        if problem:
            return _fail(problem, _EXIT_BAD_ARGUMENT)
    if args.command == "reproduce":
        problem = (
            _check_device(args.device)
            or _check_mode(args.experiment, args.mode)
            or _check_scale(args)
            or _check_datasets(args)
        )
        if problem:
            return _fail(problem, _EXIT_BAD_ARGUMENT)
    # An application may choose the backend: the command only writes PNG files.
    import matplotlib

    matplotlib.use("Agg")
    try:
        if args.command == "demo":
            from .experiments import demo

            demo.main(out=args.out, data_home=args.data_home, download=args.download)
        elif args.command == "evaluate":
            return _evaluate(args)
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
                **({} if args.datasets is None else {"datasets": args.datasets}),
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
