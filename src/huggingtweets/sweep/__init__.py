"""``huggingtweets sweep``: a hyper-parameter search over the train stage, with Optuna.

The original tuned its recipe with a W&B sweep (``dev/sweep.yaml``); its space is the
default here: learning rate log-uniform between e^-14 and e^-6, 1 to 10 epochs, a
constant / linear / cosine schedule, 0, 10 or 20 % of the steps as warm-up, gradient
accumulation 1, 4 or 8. Each trial is one ``train(run, options, output_dir=
RUN_DIR/trials/<n>)`` on the run's dataset; the objective is the best validation loss
(the checkpoint train keeps). A trial whose validation loss after an epoch is worse than
the median of the earlier trials' at that epoch stops early (Optuna's median pruner).

The study lives in ``RUN_DIR/sweep/study.db`` (SQLite): running the same command again
after Ctrl-C, a crash or ``kill -9`` continues it. Finished trials are never repeated; a
trial that was interrupted is run again with the same parameters. ``--trials N`` is the
number of finished trials wanted in all, so a larger N later extends the search.

Written: ``RUN_DIR/sweep/results.csv`` and ``results.json`` (one row per trial) and
``sweep.png`` (the loss by trial and epoch, and the parameters' importances). At the end
the best trial is promoted: its model/ (with a fresh card) and metrics.json become the
run's own. Progress is reported as events (stage "sweep", and "train" for each trial).

    from huggingtweets.sweep import sweep
    sweep("runs/me", 20, base=TrainOptions(base_model="tiny"), space={
        "learning_rate": {"min": 1e-4, "max": 3e-3, "distribution": "log_uniform_values"},
    })
"""

from huggingtweets.sweep.results import best_row, promote_trial, results_rows, write_results
from huggingtweets.sweep.space import DEFAULT_SPACE, SEARCHABLE, load_sweep_config, parse_space
from huggingtweets.sweep.study import PruneOnEval, SweepResult, sweep

__all__ = [
    "DEFAULT_SPACE",
    "SEARCHABLE",
    "PruneOnEval",
    "SweepResult",
    "best_row",
    "load_sweep_config",
    "parse_space",
    "promote_trial",
    "results_rows",
    "sweep",
    "write_results",
]
