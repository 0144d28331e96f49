"""Benchmark of the model families: the metric each reaches on its test split with its default
budget, its training time and its number of parameters, in one table.

Run with `.venv/bin/python benchmarks/families.py [--home DIR] [--pipelines digits,text,...]`.
For every family of every pipeline in the catalog that trains on a data set (all but the
agents', which `benchmarks/rl.py` measures) it runs the pipeline in one home with the family's
default hyper-parameters and the default Trainer steps, without the tuner (a search per family
would take an hour), and reads the run summary (the test metric: accuracy, RMSE, or the
FamilyEvaluator's reconstruction MSE, ELBO, class coverage or perplexity; the Trainer's seconds)
and the trained SavedModel (its parameters). Pipelines that judge a model against a baseline
show it on its own row (co2: the seasonal-naive forecast of the same test split). Then transfer
learning's gain over training from scratch on 10 labelled images per class
(`models.transfer.measure_transfer_gain`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The targets, by family: (metric, bound, "min" when the metric must reach the bound).
TARGETS = {"cnn": ("test_accuracy", 0.98, "min")}


def _parameters(pipeline_root: str) -> int:
    import numpy as np
    import tensorflow as tf

    models = sorted(
        glob.glob(os.path.join(pipeline_root, "Trainer", "model", "*", "Format-Serving")),
        key=os.path.getmtime,
    )
    loaded = tf.saved_model.load(models[-1])
    return int(sum(np.prod(variable.shape) for variable in loaded.trainable_variables))


def _seasonal_naive_row(pipeline_root: str) -> dict:
    """The forecast a co2 model is judged against, from the latest BaselineGate report."""
    (report_path, *_) = sorted(
        glob.glob(os.path.join(pipeline_root, "BaselineGate", "report", "*", "report.json")),
        key=os.path.getmtime,
        reverse=True,
    )
    with open(report_path) as handle:
        report = json.load(handle)
    return {
        "family": "(seasonal naive)",
        "metric": "test_rmse",
        "value": report["seasonal_naive_rmse"],
        "seconds": 0.0,
        "parameters": 0,
        "blessed": None,
    }


# A family judged by the FamilyEvaluator: its card's metric -> the run summary's figure.
FAMILY_EVALUATOR_METRICS = {
    "mse": "test_mse",
    "elbo": "test_elbo",
    "class_coverage": "classes_covered",
    "perplexity": "test_perplexity",
}
# ... and the baseline of the same run it is judged against, shown on its own row.
FAMILY_EVALUATOR_BASELINES = {
    "mse": "mean_image_mse",
    "elbo": "gaussian_elbo",
    "perplexity": "unigram_perplexity",
}


def _summary_metric(evaluation: str, family: str) -> str:
    """The run summary's figure a family is judged by."""
    from models import registry

    if evaluation == "family":
        return FAMILY_EVALUATOR_METRICS[registry.get_card(family).metric]
    return "test_accuracy" if evaluation == "classification" else "test_rmse"


def run_families(home: str, pipelines: list[str]) -> list[dict]:
    from models import registry
    from pipelines import catalog, console
    from pipelines.config import load
    from pipelines.local_run import run_pipeline

    rows = []
    for pipeline in pipelines:
        entry = catalog.get_pipeline(pipeline)
        if not entry.data_module:
            continue
        for family in registry.family_names(pipeline):
            config = load(
                None,
                {"pipeline": pipeline, "home": home, "tune": False, "trainer": {"family": family}},
            )
            print(f"running {config.pipeline_name}", file=sys.stderr)
            with console.progress_only(verbose=False):
                summary = run_pipeline(config, progress=lambda line: print(line, file=sys.stderr))
            if summary.status != "complete":
                raise SystemExit(f"{config.pipeline_name} failed: {summary.error}")
            metric = _summary_metric(entry.evaluation, family)
            rows.append(
                {
                    "pipeline": pipeline,
                    "family": family,
                    "metric": metric,
                    "value": summary.metrics[metric],
                    "seconds": summary.stage_seconds.get("Trainer", 0.0),
                    "parameters": _parameters(config.pipeline_root),
                    "blessed": summary.blessed,
                }
            )
            baseline = FAMILY_EVALUATOR_BASELINES.get(registry.get_card(family).metric)
            if entry.evaluation == "family" and baseline:
                rows.append(
                    {
                        "pipeline": pipeline,
                        "family": f"({baseline})",
                        "metric": metric,
                        "value": summary.metrics[baseline],
                        "seconds": 0.0,
                        "parameters": 0,
                        "blessed": None,
                    }
                )
        if entry.evaluation == "regression":
            rows.append({"pipeline": pipeline, **_seasonal_naive_row(config.pipeline_root)})
    return rows


def transfer_rows(labelled_per_class: int) -> list[dict]:
    from models import transfer

    gain = transfer.measure_transfer_gain(labelled_per_class=labelled_per_class)
    return [
        {
            "pipeline": "digits 5-9",
            "family": f"{name} ({labelled_per_class}/class)",
            "metric": "test_accuracy",
            "value": value,
            "seconds": gain.seconds / 2,
            "parameters": 0,
            "blessed": None,
        }
        for name, value in (
            ("transfer", gain.pretrained_accuracy),
            ("scratch", gain.scratch_accuracy),
        )
    ]


def print_table(rows: list[dict]) -> None:
    print(
        f"{'pipeline':<10} {'family':<20} {'metric':<14} {'value':>9} {'target':>9} "
        f"{'train s':>8} {'parameters':>11} {'blessed':>8}"
    )
    for row in rows:
        target = TARGETS.get(row["family"])
        shown_target = f"{target[1]:.4f}" if target and target[0] == row["metric"] else "-"
        blessed = {True: "yes", False: "no", None: "-"}[row["blessed"]]
        print(
            f"{row['pipeline']:<10} {row['family']:<20} {row['metric']:<14} {row['value']:>9.4f} "
            f"{shown_target:>9} {row['seconds']:>8.1f} {row['parameters'] or '-':>11} {blessed:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="dlforge home to run in (default: a new temp folder)")
    from pipelines.catalog import PIPELINES

    trained_on_data = ",".join(name for name, entry in PIPELINES.items() if entry.data_module)
    parser.add_argument("--pipelines", default=trained_on_data, help="comma-separated pipelines")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="dlforge-families-")
    rows = run_families(home, args.pipelines.split(",")) if args.pipelines else []
    rows += transfer_rows(labelled_per_class=10)
    print_table(rows)


if __name__ == "__main__":
    main()
