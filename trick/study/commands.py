"""The study verbs of `trickc`: ablate, sweep and compare (trick/cli.py adds them).

Only argparse and pathlib at import: `trickc check` builds the same parser, and must stay
free of torch and numpy. Each verb imports its study when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..dsl.diagnostics import TrickError, TrickUsageError

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def add_study_verbs(verbs, _count) -> None:
    """Add ablate, sweep and compare to trickc's sub-parsers (`_count`: a whole number >= 1)."""
    ablate = verbs.add_parser("ablate", help="what each trick of a spec buys: a run per trick and seed", description="Derive one variant of the spec per trick (without it, or the plain spec with only it), train every variant for every seed (N at a time), and write ablation.md, ablation.csv, ablation.png and curves.png to DIR (default runs/SPEC/ablation). Finished runs are reused, so a second call only redraws.")
    ablate.add_argument("spec", metavar="SPEC", help="a .trick file")
    ablate.add_argument("--seeds", type=_count, default=3, metavar="N", help="seeds per variant: the spec's seed and the N-1 after it (default 3)")
    ablate.add_argument("--jobs", type=_count, metavar="N", help="runs at a time, one torch thread each (default: the number of cores)")
    ablate.add_argument("--out", metavar="DIR", help="where the variants, their runs and the report go (default runs/SPEC/ablation)")
    ablate.add_argument("--mode", choices=["leave-one-out", "add-one-in"], default="leave-one-out", help="leave-one-out: the spec without each trick (default); add-one-in: the plain spec with each trick")
    ablate.add_argument("--metric", metavar="NAME", help="the test metric of the table (default: accuracy, else r2, else loss)")
    ablate.add_argument("--set", dest="overrides", action="append", default=[], metavar="BLOCK.CLAUSE[.OPTION]=VALUE", help="change every run, e.g. --set train.epochs=10 (checked like the spec)")
    ablate.set_defaults(func=cmd_ablate)

    sweep = verbs.add_parser("sweep", help="search the spec's sweep block with Optuna", description="Run the search of the spec's sweep { } block: Optuna's TPE sampler, median pruning after every epoch, trials N at a time, each a run folder in DIR/trials (default runs/SPEC/sweep). The study is kept in DIR/study.db (or --storage), so running the command again continues it. Writes trials.csv, sweep.png and best.trick (the spec with the best values written in).")
    sweep.add_argument("spec", metavar="SPEC", help="a .trick file with a sweep block")
    sweep.add_argument("--trials", type=_count, metavar="N", help="trials in all (default: the block's `trials`)")
    sweep.add_argument("--jobs", type=_count, metavar="N", help="trials at a time, one torch thread each (default: the number of cores)")
    sweep.add_argument("--storage", metavar="URL", help="Optuna storage shared by several machines, e.g. postgresql://user@host/db (default sqlite:///DIR/study.db)")
    sweep.add_argument("--out", metavar="DIR", help="where the trials' run folders and the report go (default runs/SPEC/sweep)")
    sweep.set_defaults(func=cmd_sweep)

    compare = verbs.add_parser("compare", help="compare finished runs: test metrics, spec differences, curves", description="Print a table of the runs' test metrics and their differences from the first run, and the clause-level differences of their specs; with -o, also write compare.md and curves.png (the learning curves overlaid) there.")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run folders (with summary.json)")
    compare.add_argument("-o", "--output", metavar="DIR", help="write compare.md and curves.png into this folder")
    compare.set_defaults(func=cmd_compare)


def _study(work) -> int:
    """Run a study command: its errors as the other verbs print them, Ctrl-C as a pause."""
    try:
        return work()
    except TrickUsageError as err:
        print(f"trickc: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except TrickError as err:
        for d in err.diagnostics:
            print(d.render(), file=sys.stderr)
        return EXIT_ERRORS
    except OSError as err:  # the output folder cannot be written
        print(f"trickc: error: cannot write {err.filename or 'the output'}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; every run keeps its last finished epoch: run the same command again to continue", file=sys.stderr)
        return 130


def _default_out(spec: str, what: str) -> Path:
    from ..dsl.parser import parse_text, read_source

    try:
        name = parse_text(read_source(spec), spec).name or Path(spec).stem
    except TrickError:
        name = Path(spec).stem
    return Path("runs") / name / what


def cmd_ablate(args) -> int:
    if not Path(args.spec).is_file():
        print(f"trickc: error: no such file: {args.spec}", file=sys.stderr)
        return EXIT_USAGE

    def work() -> int:
        from .ablate import ablate, table
        from .jobs import check_jobs

        out = Path(args.out) if args.out else _default_out(args.spec, "ablation")
        result = ablate(Path(args.spec), out, seeds=args.seeds, jobs=check_jobs(args.jobs), mode=args.mode, metric=args.metric, overrides=tuple(args.overrides))
        print(table(result), end="")
        print(f"wrote {out / 'ablation.md'}, ablation.csv, ablation.png and curves.png")
        return EXIT_OK

    return _study(work)


def cmd_sweep(args) -> int:
    if not Path(args.spec).is_file():
        print(f"trickc: error: no such file: {args.spec}", file=sys.stderr)
        return EXIT_USAGE

    def work() -> int:
        from .jobs import check_jobs
        from .sweep import run_sweep

        out = Path(args.out) if args.out else _default_out(args.spec, "sweep")
        result = run_sweep(Path(args.spec), out, trials=args.trials, jobs=check_jobs(args.jobs), storage=args.storage)
        print(result.report(), end="")
        return EXIT_OK

    return _study(work)


def cmd_compare(args) -> int:
    def work() -> int:
        from .compare import compare

        print(compare([Path(r) for r in args.runs], Path(args.output) if args.output else None), end="")
        return EXIT_OK

    return _study(work)


