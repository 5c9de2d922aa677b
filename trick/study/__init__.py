"""Studies of a spec: many runs of it, each a normal run folder, and what they show.

    jobs.py      runs in worker processes, N at a time, one torch thread each; reuse and resume
    worker.py    the worker: `python -m trick.study.worker` trains one run folder
    variants.py  the spec's tricks (from the registry's marks) and the spec without them
    stats.py     mean, standard deviation, Welch's interval of a difference
    ablate.py    `trickc ablate`: one variant per trick, every seed, the table
    sweep.py     `trickc sweep`: the sweep block's search with Optuna (TPE, median pruning)
    compare.py   `trickc compare`: test metrics, the spec's clause-level differences
    plots.py     the pictures (matplotlib)

This part sits above the driver: it may use the dsl, the compiler, the runtime and the driver;
nothing below it imports it.
"""
