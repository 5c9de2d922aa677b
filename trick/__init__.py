"""trick: a declarative language and compiler for neural network training recipes.

    import trick
    program = trick.parse("specs/mnist1d_cnn.trick")     # the AST
    diagnostics = trick.check("specs/mnist1d_cnn.trick")  # list of Diagnostic, [] when clean
    program = trick.compile("specs/mnist1d_cnn.trick")    # .model(), .plan, .source(), .summary()
    batch = program.augment(x_raw, seed=0)                # the training augmentation of a raw batch
    run = trick.load("runs/mnist1d_cnn/1")                # a trained run folder
    predictions = run.predict(x_raw)                      # class names and probabilities (or values)

Importing `trick` loads neither torch nor numpy; only compiling and running a spec do.

`Program.augment` lives with the compiled program, but the engine it runs is the runtime's,
which the compiler may not import. So this module, the one part that may import both,
installs the bridge (`_augment`, below) into trick/compiler/program.py when `trick` is
imported, which Python does before any of its modules runs. The bridge imports the runtime
only when called.
"""

from __future__ import annotations

import os

from .compiler import program as _program
from .dsl import ast
from .dsl.diagnostics import Diagnostic, Span, TrickCheckError, TrickError, TrickImportError, TrickSyntaxError

__version__ = "0.1.0"

__all__ = [
    "Diagnostic",
    "Span",
    "TrickCheckError",
    "TrickError",
    "TrickImportError",
    "TrickSyntaxError",
    "ast",
    "check",
    "compile",
    "format",
    "load",
    "parse",
    "run",
]


def parse(source: str | os.PathLike) -> ast.Program:
    """The AST of a spec, given its text or the path of a .trick file.

    Raises TrickSyntaxError (with every syntax error of the file) if it does not parse.
    """
    from .dsl.imports import is_path
    from .dsl.parser import parse_text, read_source

    if is_path(source):
        return parse_text(read_source(source), str(source))
    return parse_text(str(source))


def check(source: str | os.PathLike) -> list[Diagnostic]:
    """Every diagnostic for a spec (text or path) and the specs it imports, in line order.

    Each has path, line, column, severity ("error" or "warning"), message and suggestion.
    An empty list means the spec is clean.
    """
    from .compiler.pipeline import check_source

    return check_source(source).diagnostics


def format(source: str | os.PathLike) -> str:  # noqa: A001 - mirrors `trickc fmt`
    """The canonical layout of a spec (text or path), comments kept."""
    from .dsl.format import format_program

    return format_program(parse(source))


def compile(source: str | os.PathLike):  # noqa: A001 - the verb users know from `trickc compile`
    """Check and lower a spec (text or path) into a Program: `.model()` (an nn.Module),
    `.plan` (the TrainingPlan), `.graph` (the ModelGraph), `.source()` (PyTorch source),
    `.summary()` (a table of layers) and `.augment(x, seed=0)` (the training augmentation of
    a raw batch, as the trainer applies it). Raises TrickError with every error of the spec."""
    from .compiler.pipeline import compile_source

    return compile_source(source)


def run(program, out: str | os.PathLike | None = None, *, resume: bool = False, device: str | None = None, quiet: bool = True, tensorboard: bool = False):
    """Train a compiled program (or a spec's text or path) and return a RunResult:
    `.run_dir`, `.summary` (test metrics, best epoch, epochs run, wall time), `.history`
    (metrics per epoch) and `.model` (the trained nn.Module). The run folder also gets
    the plots; `tensorboard=True` adds TensorBoard event files (needs the package)."""
    import sys

    from .driver import train

    if not hasattr(program, "plan"):
        program = compile(program)
    return train(program, out, resume=resume, device=device, stream=None if quiet else sys.stderr, tensorboard=tensorboard)


def load(run_dir: str | os.PathLike, weights: str = "best", device: str = "cpu"):
    """A trained run folder, ready to predict: `.predict(x, weights=None, tta=False)` on raw
    inputs [N, *input shape] (the run's normalization is applied) gives a Prediction (or a
    dict of them by target, for a model with heads): `.values` (class names, or numbers in
    the target's own units), `.probabilities` [N, classes], `.probability`, `.index`. Also
    `.model` (the trained nn.Module, on normalized inputs), `.normalizer`, `.classes` (a
    list, or a dict by target), `.program` (the compiled spec). `weights` is "best" or
    "last"; a folder without them is a TrickUsageError."""
    from .compiler.run_spec import compile_run
    from .runtime.predict import load as load_run

    return load_run(run_dir, compile_run(run_dir), weights, device)


def _augment(program, x, seed, generator):
    """`Program.augment`: the runtime's Augmenter on the program's `augment` block."""
    from .runtime.preview import augment_batch

    return augment_batch(program.plan.augment, program.graph.input, x, seed=seed, generator=generator)


_program.install_augment(_augment)
