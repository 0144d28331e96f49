"""Benchmark of the model families: the metric each reaches on its test split with its default
budget, its training time and its number of parameters, in one table.

Run with `.venv/bin/python benchmarks/families.py [--home DIR] [--pipelines digits,text,co2]`. For
every family of every supervised pipeline in the catalog it runs the pipeline in one home with
the family's default hyper-parameters and the default Trainer steps, without the tuner (a
search per family would take an hour), and reads the run summary (the test metric, the Trainer's
seconds) and the trained SavedModel (its parameters). Pipelines that judge a model against a
baseline show it on its own row (co2: the seasonal-naive forecast of the same test split).
The generative families, which no pipeline trains yet, are measured by
`models.generative.measure` on the same digits split (sample grids written beside the home);
transfer learning's gain over training from scratch on 10 labelled images per class by
`models.transfer.measure_transfer_gain`. Agents are benchmarked by `benchmarks/rl.py`.
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
            metric = "test_accuracy" if entry.evaluation == "classification" else "test_rmse"
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
        if entry.evaluation == "regression":
            rows.append({"pipeline": pipeline, **_seasonal_naive_row(config.pipeline_root)})
    return rows


def generative_rows(output_dir: str) -> list[dict]:
    from models import generative

    figures = generative.measure(output_dir)
    print(generative.format_figures(figures), file=sys.stderr)
    measured = {
        "autoencoder": ("test_mse", figures.autoencoder_mse),
        "vae": ("test_elbo_nats", figures.vae_test_elbo),
        "gan": ("classes_covered", float(figures.gan_quality.classes_covered)),
    }
    return [
        {
            "pipeline": "generative",
            "family": family,
            "metric": metric,
            "value": value,
            "seconds": figures.seconds[family],
            "parameters": figures.parameters[family],
            "blessed": None,
        }
        for family, (metric, value) in measured.items()
    ]


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
    parser.add_argument("--pipelines", default="digits,text,co2", help="comma-separated pipelines")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="dlforge-families-")
    rows = run_families(home, args.pipelines.split(",")) if args.pipelines else []
    rows += generative_rows(os.path.join(home, "generative"))
    rows += transfer_rows(labelled_per_class=10)
    print_table(rows)


if __name__ == "__main__":
    main()
