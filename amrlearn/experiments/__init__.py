"""The paper's experiments: plain functions, ``run(config, out_dir) -> dict`` and ``plot``.

The command line (:mod:`amrlearn.cli`) only parses arguments and calls these.
"""
