"""The `trickc` command: verbs over the stages, TrickError -> `file:line:col` and exit codes.

Exit codes: 0 success (warnings allowed), 1 the spec has errors (or `fmt --check` found
files to reformat), 2 a usage error (bad arguments, a file that does not exist).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .dsl.diagnostics import Diagnostic, TrickError, TrickUsageError
from .study.commands import add_study_verbs

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trickc", description="Compile and run .trick neural network training recipes.")
    parser.add_argument("--version", action="version", version=f"trickc {_version()}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    check = verbs.add_parser("check", help="parse and check specs (fast; no torch)", description="Parse and check specs; print every error with its file, line and column.")
    check.add_argument("specs", nargs="+", metavar="SPEC", help=".trick files")
    check.add_argument("--json", action="store_true", help="print the diagnostics as JSON, one list for all files")
    check.set_defaults(func=cmd_check)

    fmt = verbs.add_parser("fmt", help="rewrite specs in the canonical layout", description="Rewrite specs in the canonical layout, keeping comments. '-' reads standard input and writes standard output.")
    fmt.add_argument("specs", nargs="+", metavar="SPEC", help=".trick files, or - for standard input")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    fmt.set_defaults(func=cmd_fmt)

    comp = verbs.add_parser("compile", help="show the network; write its PyTorch source and the training plan", description="Compile a spec: print a summary of the network, and optionally write standalone PyTorch source (-o) and the resolved training plan (--plan).")
    comp.add_argument("spec", metavar="SPEC", help="a .trick file, or a run folder (the source then takes raw inputs: it embeds the fitted normalization)")
    comp.add_argument("-o", "--output", metavar="MODEL.py", help="write the generated PyTorch source here (it needs torch only)")
    comp.add_argument("--plan", metavar="PLAN.json", help="write the TrainingPlan as JSON here")
    comp.set_defaults(func=cmd_compile)

    run = verbs.add_parser("run", help="train a spec and write a run folder", description="Train a spec. The run folder (runs/SPEC/N, or --out) gets the spec, the plan, metrics.jsonl, checkpoints and summary.json.")
    run.add_argument("spec", metavar="SPEC", help="a .trick file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="BLOCK.CLAUSE[.OPTION]=VALUE", help="change the spec for this run, e.g. --set train.epochs=5 (checked like the spec)")
    run.add_argument("--out", metavar="DIR", help="the run folder (default: runs/SPEC/N with the next N)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run (the latest one, or --out DIR)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: the spec's, else auto)")
    run.add_argument("--seed", type=int, metavar="N", help="same as --set train.seed=N")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors and the final table")
    run.add_argument("--nproc", type=_count, metavar="N", help="train data-parallel on N processes on this machine (torch.distributed; see docs/distributed.md)")
    run.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files into the run folder (needs the tensorboard package)")
    run.set_defaults(func=cmd_run)

    graph = verbs.add_parser("graph", help="draw the network (Graphviz, else matplotlib)", description="Draw the network: layers with their output shapes, labels, residual edges, heads and distillation hints. Writes .svg or .png with Graphviz's dot when it is installed, else with matplotlib (a simpler layout), and .dot as DOT text; without -o, prints the DOT text.")
    graph.add_argument("spec", metavar="SPEC", help="a .trick file")
    graph.add_argument("-o", "--output", metavar="NET.svg|.png|.dot", help="the picture to write")
    graph.set_defaults(func=cmd_graph)

    preview = verbs.add_parser("preview", help="draw training samples and their augmentation", description="Draw the first N training samples (loaded as a run loads them) next to their augmentation by the spec's augment block, as the trainer applies it: images as images, sequences as curves, 2-D points as a scatter. Without an augment block it draws the originals alone.")
    preview.add_argument("spec", metavar="SPEC", help="a .trick file")
    preview.add_argument("-o", "--output", default="augment.png", metavar="AUGMENT.png", help="the picture to write (.png, .svg or .pdf; default augment.png)")
    preview.add_argument("--n", type=int, default=16, metavar="N", help="how many training samples to draw (default 16)")
    preview.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the augmentation's draws (default 0)")
    preview.set_defaults(func=cmd_preview)

    predict = verbs.add_parser("predict", help="predict with a trained run (no labels needed)", description="Predict with a trained run on a .csv file, a .npz or .npy file, a folder of images or one image, labels optional. The run's input normalization and class names are applied. The predictions (CSV: an id, row, index or file column, then per target its predicted class or value, and a classifier's probability) go to -o, else to standard output.")
    predict.add_argument("run", metavar="RUN", help="a run folder (runs/SPEC/N, or the --out of trickc run)")
    predict.add_argument("--data", required=True, metavar="PATH", help="a .csv, .npz or .npy file, an image, or a folder of images (flat, or class folders)")
    predict.add_argument("-o", "--output", metavar="PREDICTIONS.csv", help="write the predictions here (default: standard output)")
    predict.add_argument("--weights", choices=("best", "last"), default="best", help="the checkpoint to use (default best)")
    predict.add_argument("--tta", action="store_true", help="average the softmax over the test-time views of the spec's evaluate block")
    predict.add_argument("--all-probs", action="store_true", help="also write one probability column per class")
    predict.set_defaults(func=cmd_predict)

    evaluate = verbs.add_parser("evaluate", help="score a trained run on another labelled set", description="Score a trained run on another labelled set (a .csv file with the label column, a .npz file with y, or class folders of images): the metrics of its summary, a per-class table (precision, recall, f1, support) and a confusion matrix. Writes metrics.json, predictions.csv, per_class.csv and confusion_matrix.png into -o (default RUN/evaluation/DATA).")
    evaluate.add_argument("run", metavar="RUN", help="a run folder (runs/SPEC/N, or the --out of trickc run)")
    evaluate.add_argument("--data", required=True, metavar="PATH", help="labelled data: a .csv, .npz or .npy file, or class folders of images")
    evaluate.add_argument("-o", "--output", metavar="DIR", help="the folder for the reports (default RUN/evaluation/DATA)")
    evaluate.add_argument("--weights", choices=("best", "last"), default="best", help="the checkpoint to use (default best)")
    evaluate.add_argument("--tta", action="store_true", help="score the softmax averaged over the test-time views of the spec's evaluate block")
    evaluate.set_defaults(func=cmd_evaluate)

    export = verbs.add_parser("export", help="write a trained run as ONNX, torch.export or TorchScript", description="Write a trained run's model as ONNX (.onnx, checked with onnxruntime; needs pip install 'trick[export]'), a torch.export program (.pt2) or TorchScript (.ts). It takes raw inputs (the fitted normalization is inside), has a dynamic batch axis, and carries the class names, input shape and spec hash as metadata.")
    export.add_argument("run", metavar="RUN", help="a run folder (runs/SPEC/N, or the --out of trickc run)")
    export.add_argument("-o", "--output", required=True, metavar="MODEL.onnx|.pt2|.ts", help="the file to write; its suffix chooses the format")
    export.add_argument("--weights", choices=("best", "last"), default="best", help="the checkpoint to export (default best)")
    export.set_defaults(func=cmd_export)

    add_study_verbs(verbs, _count)  # ablate, sweep, compare (trick/study/commands.py)

    lsp = verbs.add_parser("lsp", help="run the language server (for editors)", description="Speak the Language Server Protocol on standard input and output: diagnostics, hover, completion and formatting of .trick files.")
    lsp.set_defaults(func=cmd_lsp)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = _plain_check(words) or _parser().parse_args(words)
    args.argv = words  # what `--nproc` re-runs in each worker
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("trickc: interrupted", file=sys.stderr)
        return 130


def _plain_check(words: list[str]) -> argparse.Namespace | None:
    """`check SPEC... [--json]` read as the parser reads it, without building the parser:
    building every verb's arguments and help (gettext look-ups for each) is ~3 % of a check's
    start (docs/performance.md, section 3). Anything else
    (an option, `-`, help, no spec) is None and goes through the parser."""
    if words[:1] != ["check"]:
        return None
    start, end = 1, len(words)
    while start < end and words[start] == "--json":
        start += 1
    while end > start and words[end - 1] == "--json":
        end -= 1
    specs = words[start:end]  # the parser takes the specs as one run of words, --json around it
    if not specs or any(w.startswith("-") for w in specs):
        return None
    return argparse.Namespace(verb="check", specs=specs, json=len(specs) < len(words) - 1, func=cmd_check)


def _missing(paths: Sequence[str]) -> int | None:
    for path in paths:
        if path != "-" and not os.path.exists(path):
            print(f"trickc: error: no such file: {path}", file=sys.stderr)
            return EXIT_USAGE
        if path != "-" and os.path.isdir(path):
            print(f"trickc: error: {path} is a directory; name the .trick files", file=sys.stderr)
            return EXIT_USAGE
    return None


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for d in diagnostics:
        print(d.render(), file=sys.stderr)


def cmd_check(args) -> int:
    from .compiler.pipeline import check_source

    missing = _missing(args.specs)
    if missing is not None:
        return missing
    status = EXIT_OK
    everything: list[Diagnostic] = []
    for path in args.specs:
        diagnostics = check_source(Path(path), name=path).diagnostics  # an argument is a path, whatever its name
        everything += diagnostics
        errors = sum(d.severity == "error" for d in diagnostics)
        warnings = len(diagnostics) - errors
        if not args.json:
            _print_diagnostics(diagnostics)
            if errors:
                print(f"{path}: {errors} error{'s' * (errors != 1)}" + (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""), file=sys.stderr)
            else:
                print(f"{path}: ok" + (f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""))
        if errors:
            status = EXIT_ERRORS
    if args.json:
        print(json.dumps([d.to_json() for d in everything], indent=2))
    return status


def cmd_fmt(args) -> int:
    from .dsl.format import format_program
    from .dsl.parser import parse_text, read_source

    missing = _missing(args.specs)
    if missing is not None:
        return missing
    status = EXIT_OK
    for path in args.specs:
        try:
            text = sys.stdin.read() if path == "-" else read_source(path)
            formatted = format_program(parse_text(text, "<stdin>" if path == "-" else path))
        except TrickError as err:
            from .dsl.imports import is_spec_name

            quoted = path == "-" or is_spec_name(path)  # never the lines of a file that is not a spec
            _print_diagnostics(err.diagnostics if quoted else [Diagnostic(d.span, d.message, d.severity, d.suggestion) for d in err.diagnostics])
            status = EXIT_ERRORS
            continue
        if path == "-":
            sys.stdout.write(formatted)
        elif formatted != text:
            if args.check:
                print(f"would reformat {path}")
                status = EXIT_ERRORS
            else:
                with open(path, "w", encoding="utf-8", newline="\n") as handle:
                    handle.write(formatted)
                print(f"reformatted {path}")
    return status


def _compile(spec: str):
    """The compiled spec, or the exit code after printing why it could not be compiled."""
    from .compiler.pipeline import compile_source

    missing = _missing([spec])
    if missing is not None:
        return missing
    try:
        program = compile_source(Path(spec), name=spec)
    except TrickError as err:
        _print_diagnostics(err.diagnostics)
        return EXIT_ERRORS
    _print_diagnostics(program.warnings)
    return program


def cmd_compile(args) -> int:
    if os.path.isdir(args.spec):  # a run folder: its source embeds what training fitted
        return _using_run(lambda: _write_compiled(args, *_run_source(args.spec)))
    program = _compile(args.spec)
    if isinstance(program, int):
        return program
    return _write_compiled(args, program, program.source)


def _run_source(run: str):
    """(the program of a run folder, its source with the fitted normalization)."""
    from .compiler.codegen import Fitted, generate
    from .runtime.export import fitted

    loaded = _load_run(run, "best" if os.path.isfile(os.path.join(run, "best.pt")) else "last")
    return loaded.program, lambda: generate(loaded.graph, loaded.plan.spec_path, Fitted(**fitted(loaded)))


def _write_compiled(args, program, source) -> int:
    print(program.summary(), end="")
    for path, text in ((args.output, source), (args.plan, program.plan_json)):
        if path:
            try:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text())
            except OSError as err:
                print(f"trickc: error: cannot write {path}: {err.strerror}", file=sys.stderr)
                return EXIT_USAGE
            print(f"wrote {path}")
    return EXIT_OK


def cmd_run(args) -> int:
    from .compiler.pipeline import compile_source

    missing = _missing([args.spec])
    if missing is not None:
        return missing
    overrides = list(args.overrides) + ([f"train.seed={args.seed}"] if args.seed is not None else [])
    from .runtime.launch import env_rank, env_world_size

    workers = env_world_size()  # set when torchrun (or `--nproc`) started this process
    rank = env_rank() if workers else 0
    try:
        program = compile_source(Path(args.spec), name=args.spec, overrides=overrides)
        from . import driver

        code = driver.start_workers(program, args.nproc, args.argv)
        if code is not None:
            return code
        if rank == 0:
            _print_diagnostics(program.warnings)
        from .runtime.run import table

        result = driver.train(program, args.out, resume=args.resume, device=args.device, stream=None if args.quiet else sys.stderr, tensorboard=_tensorboard(args))
    except TrickUsageError as err:
        if rank == 0:  # every process of a distributed run meets the same error; rank 0 says it
            print(f"trickc: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except TrickError as err:
        if rank == 0:
            _print_diagnostics(err.diagnostics)
        return EXIT_ERRORS
    except KeyboardInterrupt as err:
        if rank == 0 and getattr(err, "checkpoint", True) is None:  # run.Interrupted: no epoch had finished
            print("\ninterrupted before the first epoch finished; nothing was saved", file=sys.stderr)
        elif rank == 0:
            where = f" --out {args.out}" if args.out else ""
            nproc = f" --nproc {workers}" if workers else ""
            print(f"\ninterrupted; the last finished epoch is saved. Continue with: trickc run {args.spec}{where}{nproc} --resume", file=sys.stderr)
        return 130
    except Exception as err:
        if workers is None or not _lost_peer(err):
            raise
        print(f"trickc: error: worker {rank} of {workers} lost contact with the others ({_first_line(err)}); the run stops", file=sys.stderr)
        return EXIT_ERRORS
    if rank == 0:
        print(table(result), end="")
    return EXIT_OK


def _count(text: str) -> int:
    """`--nproc N`: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes >= 1, found '{text}'")
    return int(text)


def _lost_peer(err: Exception) -> bool:
    """Whether a worker's error comes from torch.distributed: a peer that died or hung."""
    import torch.distributed as dist

    return isinstance(err, (dist.DistError, getattr(dist, "DistBackendError", dist.DistError))) or "Connection closed by peer" in str(err) or "Connection reset by peer" in str(err)


def _first_line(err: Exception) -> str:
    """The gist of a collective's error: its first sentence, without the source position."""
    import re

    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return re.sub(r"^\[[^\]]*\] ", "", line).split(". ")[0][:160]


def _tensorboard(args) -> bool:
    """Whether to write TensorBoard files; a missing package is said before training starts."""
    import importlib.util

    if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
        from .runtime.report import TENSORBOARD_MISSING

        if os.environ.get("RANK", "0") == "0":  # once, not by every process of a distributed run
            print(f"trickc: {TENSORBOARD_MISSING} (training without it)", file=sys.stderr)
        return False
    return args.tensorboard


def cmd_graph(args) -> int:
    from .compiler.graph import FORMATS, NoGraphviz, render, to_dot, to_picture

    fmt = os.path.splitext(args.output)[1].lower().lstrip(".") if args.output else None
    if fmt is not None and fmt not in FORMATS:
        print(f"trickc: error: cannot write a graph as '{args.output}'; name a .svg, .png or .dot file", file=sys.stderr)
        return EXIT_USAGE
    program = _compile(args.spec)
    if isinstance(program, int):
        return program
    text = to_dot(program)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    how = "drawn with Graphviz's dot"
    try:
        try:
            written = render(text, args.output)
        except NoGraphviz:  # the picture asked for, drawn with matplotlib; never a file not named
            try:
                from .runtime.drawing import draw
            except ImportError as err:
                print(f"trickc: error: cannot draw {args.output}: Graphviz's dot is not installed, nor is matplotlib ({err}); install either, or write DOT text with -o {os.path.splitext(args.output)[0]}.dot", file=sys.stderr)
                return EXIT_ERRORS
            written = draw(to_picture(program), args.output)
            how = "drawn with matplotlib, as Graphviz's dot is not installed; with Graphviz the layout is better"
    except OSError as err:
        print(f"trickc: error: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as err:
        print(f"trickc: error: Graphviz's dot failed: {err}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {written} (DOT text)" if fmt == "dot" else f"wrote {written} ({how})")
    return EXIT_OK


PREVIEW_FORMATS = (".png", ".svg", ".pdf")


def cmd_preview(args) -> int:
    if args.n < 1:
        print(f"trickc: error: --n must be at least 1, found {args.n}", file=sys.stderr)
        return EXIT_USAGE
    if os.path.splitext(args.output)[1].lower() not in PREVIEW_FORMATS:
        print(f"trickc: error: cannot draw a preview as '{args.output}'; name a .png, .svg or .pdf file", file=sys.stderr)
        return EXIT_USAGE
    program = _compile(args.spec)
    if isinstance(program, int):
        return program
    try:
        from .runtime.preview import write_preview

        drawn = write_preview(program, args.output, n=args.n, seed=args.seed)
    except TrickUsageError as err:
        print(f"trickc: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except TrickError as err:
        _print_diagnostics(err.diagnostics)
        return EXIT_ERRORS
    except OSError as err:
        print(f"trickc: error: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    fewer = f" (the training split has only {drawn.samples})" if drawn.samples < args.n else ""
    if drawn.augmented:
        print(f"wrote {args.output}: {drawn.samples} training {drawn.kind}{fewer}, original and augmented (seed {args.seed})")
    else:
        print(f"{args.spec} has no augment block; wrote {args.output} with {drawn.samples} training {drawn.kind}{fewer} as they are")
    return EXIT_OK


def _load_run(run: str, weights: str):
    from .compiler.run_spec import compile_run
    from .runtime.predict import load

    return load(run, compile_run(run), weights)


def _using_run(body) -> int:
    """body()'s exit code; a TrickError it raises, printed (2 for a usage error, else 1)."""
    try:
        return body()
    except TrickUsageError as err:
        print(f"trickc: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except TrickError as err:
        _print_diagnostics(err.diagnostics)
        return EXIT_ERRORS


def cmd_predict(args) -> int:
    def body() -> int:
        from .runtime.predict_data import predict_file

        n = predict_file(_load_run(args.run, args.weights), args.data, args.output, tta=args.tta, all_probs=args.all_probs, stream=sys.stderr)
        if args.output is not None:
            print(f"wrote {args.output}: {n} prediction{'s' * (n != 1)} ({args.weights}.pt{', test-time augmentation' if args.tta else ''})")
        return EXIT_OK

    return _using_run(body)


def cmd_evaluate(args) -> int:
    def body() -> int:
        from .runtime.evaluate import evaluate_file

        _, folder, files, text = evaluate_file(_load_run(args.run, args.weights), args.data, args.output, tta=args.tta, stream=sys.stderr)
        print(text, end="")
        print(f"wrote {', '.join(f.name for f in files)} in {folder}")
        return EXIT_OK

    return _using_run(body)


def cmd_export(args) -> int:
    def body() -> int:
        from .runtime.export import TOLERANCE, export

        loaded = _load_run(args.run, args.weights)
        done = export(loaded, args.output)
        shape = ", ".join(map(str, loaded.inputs.shape))
        print(f"wrote {args.output} ({done.format}; {args.weights}.pt, epoch {loaded.checkpoint(args.weights)[2]}; raw inputs [N, {shape}])")
        if done.difference is not None:
            if done.difference > TOLERANCE:
                print(f"trickc: error: onnxruntime's outputs differ from torch's by {done.difference:.2g} (relative), more than {TOLERANCE:g}; {args.output} may not compute what the model does", file=sys.stderr)
                return EXIT_ERRORS
            print(f"checked with onnxruntime: its outputs are torch's within {done.difference:.1e} (relative)")
        return EXIT_OK

    return _using_run(body)


def cmd_lsp(args) -> int:
    try:
        from .lsp import serve
    except ImportError as err:
        print(f"trickc: error: the language server needs pygls ({err}); install it with: pip install 'pygls>=2,<3'", file=sys.stderr)
        return EXIT_USAGE
    serve()
    return EXIT_OK
