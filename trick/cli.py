"""The `trickc` command: verbs over the stages, TrickError -> `file:line:col` and exit codes.

Exit codes: 0 success (warnings allowed), 1 the spec has errors (or `fmt --check` found
files to reformat), 2 a usage error (bad arguments, a file that does not exist).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from .dsl.diagnostics import Diagnostic, TrickError, TrickUsageError

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
    comp.add_argument("spec", metavar="SPEC", help="a .trick file")
    comp.add_argument("-o", "--output", metavar="MODEL.py", help="write the generated PyTorch source here")
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
    run.set_defaults(func=cmd_run)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("trickc: interrupted", file=sys.stderr)
        return 130


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
    from .compiler.check import check_source

    missing = _missing(args.specs)
    if missing is not None:
        return missing
    status = EXIT_OK
    everything: list[Diagnostic] = []
    for path in args.specs:
        diagnostics = check_source(path).diagnostics
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
            _print_diagnostics(err.diagnostics)
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


def cmd_compile(args) -> int:
    from .compiler.program import compile_source

    missing = _missing([args.spec])
    if missing is not None:
        return missing
    try:
        program = compile_source(args.spec)
    except TrickError as err:
        _print_diagnostics(err.diagnostics)
        return EXIT_ERRORS
    _print_diagnostics(program.warnings)
    print(program.summary(), end="")
    for path, text in ((args.output, program.source), (args.plan, program.plan_json)):
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
    from .compiler.program import compile_source

    missing = _missing([args.spec])
    if missing is not None:
        return missing
    overrides = list(args.overrides) + ([f"train.seed={args.seed}"] if args.seed is not None else [])
    try:
        program = compile_source(args.spec, overrides=overrides)
        _print_diagnostics(program.warnings)
        from .runtime.run import execute, table

        result = execute(program, args.out, resume=args.resume, device=args.device, stream=None if args.quiet else sys.stderr)
    except TrickUsageError as err:
        print(f"trickc: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except TrickError as err:
        _print_diagnostics(err.diagnostics)
        return EXIT_ERRORS
    except KeyboardInterrupt:
        where = f" --out {args.out}" if args.out else ""
        print(f"\ninterrupted; the last finished epoch is saved. Continue with: trickc run {args.spec}{where} --resume", file=sys.stderr)
        return 130
    print(table(result), end="")
    return EXIT_OK
