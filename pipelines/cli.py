"""The `dlforge` command line: the one place that reads flags and the environment.

TensorFlow is imported only by the commands that need it, so `dlforge runs` and `--help` are fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Sequence

from models import registry
from models.data.ingest import IngestError
from pipelines import config as config_lib
from pipelines import console
from pipelines.config import ConfigError


class UsageError(Exception):
    """A command line the user has to fix."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dlforge", description="End-to-end deep-learning pipelines on TFX.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a pipeline locally (LocalDagRunner)")
    run.add_argument("pipeline", help=f"pipeline to run, one of {list(config_lib.PIPELINES)}")
    run.add_argument(
        "--model", help=f"model family, one of {registry.family_names()} (default: cnn)"
    )
    run.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")
    run.add_argument("--config", help="TOML config file (see configs/)")
    run.add_argument(
        "--data", help="CSV file or folder of them to ingest as a new span before the run"
    )
    run.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="search hyper-parameters with KerasTuner before training (default: on)",
    )
    run.add_argument("--verbose", action="store_true", help="show TFX, Beam and TF logs")

    compile_command = commands.add_parser(
        "compile", help="compile a pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines"
    )
    compile_command.add_argument("pipeline", help=f"one of {list(config_lib.PIPELINES)}")
    compile_command.add_argument("--target", required=True, choices=["kubeflow", "vertex"])
    compile_command.add_argument("-o", "--output", required=True, help="JSON file to write")
    compile_command.add_argument("--image", required=True, help="container image of the steps")
    compile_command.add_argument(
        "--pipeline-root", required=True, help="URI for the steps' artifacts, e.g. gs://b/root"
    )
    compile_command.add_argument(
        "--home", required=True, help="remote dlforge home (data, schema, pushed models) URI"
    )
    compile_command.add_argument("--model", help="model family (default: cnn)")
    compile_command.add_argument("--config", help="TOML config file (see configs/)")
    compile_command.add_argument("--tune", action=argparse.BooleanOptionalAction, default=None)

    edge = commands.add_parser("edge", help="run a pushed TFLite model as a device would")
    edge_commands = edge.add_subparsers(dest="edge_command", required=True, parser_class=_Parser)
    edge_predict = edge_commands.add_parser(
        "predict", help="predict with a .tflite model (tflite-runtime and numpy only)"
    )
    edge_predict.add_argument("model", help="the .tflite file (metadata.json beside it is read)")
    edge_predict.add_argument("--input", required=True, help=".npy, .csv or .json rows")

    runs = commands.add_parser("runs", help="list past runs from ML Metadata, newest first")
    runs.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")
    return parser


def _home(flag: str | None) -> str:
    return flag or os.environ.get("DLFORGE_HOME") or config_lib.DEFAULT_HOME


def _run_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
    overrides: dict = {"pipeline": args.pipeline, "home": _home(args.home)}
    if getattr(args, "data", None) is not None:
        overrides["data_path"] = args.data
    if args.tune is not None:
        overrides["tune"] = args.tune
    if args.model is not None:
        overrides["trainer"] = {"family": args.model}
    return config_lib.load(args.config, overrides)


def _print_summary(summary) -> None:
    print(f"\nRun {summary.run_id}: {summary.status} in {summary.total_seconds:.1f} s")
    print(f"  {'stage':<22} {'status':<9} {'seconds':>8}")
    for stage, state in summary.stage_states.items():
        seconds = summary.stage_seconds.get(stage)
        shown = f"{seconds:8.1f}" if seconds is not None else f"{'-':>8}"
        print(f"  {stage:<22} {state:<9} {shown}")
    if summary.error:
        print(f"  error: {summary.error}")
    if "test_accuracy" in summary.metrics:
        print(f"  test accuracy: {summary.metrics['test_accuracy']:.4f}")
    if summary.status == "complete":
        print(f"  blessed: {'yes' if summary.blessed else 'no'}")
        for failure in summary.blessing_failures:
            print(f"    {failure}")
        if summary.pushed:
            print(f"  pushed: {summary.pushed_path} (version {summary.pushed_version})")
        else:
            print("  pushed: no")
        device = summary.device_model
        if device.get("chosen"):
            print(
                f"  device model: {device['chosen']} TFLite, {device['size_bytes'] / 1024:.0f} KB, "
                f"test accuracy {device['accuracy']:.4f}"
            )
        if device.get("pushed_path"):
            print(f"  pushed to devices: {device['pushed_path']}")


def _command_run(args: argparse.Namespace) -> int:
    from pipelines.local_run import prepare_data, run_pipeline

    config = _run_config(args)
    # Ingest first: a bad file is reported before TensorFlow is imported. The run then reads
    # the latest span, which now holds the user's rows.
    prepared = prepare_data(config)
    config = dataclasses.replace(config, data_path="")
    console.configure_logs(args.verbose)
    print(
        f"dlforge: running {config.pipeline_name} "
        f"({'with' if config.tune else 'without'} tuning) in {config.home}"
    )
    if prepared:
        print(f"  {prepared}")
    with console.progress_only(args.verbose) as progress:
        summary = run_pipeline(config, progress)
    _print_summary(summary)
    print(f"  summary: {os.path.join(config.runs_dir, summary.run_id, 'summary.json')}")
    return 0 if summary.status == "complete" else 1


def _command_compile(args: argparse.Namespace) -> int:
    config = _run_config(args)
    console.configure_logs(verbose=False)
    from pipelines.kubeflow import compile_pipeline

    try:
        document = compile_pipeline(
            config,
            target=args.target,
            output_path=args.output,
            image=args.image,
            pipeline_root=args.pipeline_root,
        )
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    spec = document.get("pipelineSpec", document)
    print(
        f"dlforge: compiled {spec['pipelineInfo']['name']} for {args.target} "
        f"({len(spec['root']['dag']['tasks'])} tasks) to {args.output}"
    )
    return 0


def _command_edge(args: argparse.Namespace) -> int:
    from models import edge_runner

    try:
        model = edge_runner.EdgeModel.from_file(args.model)
        outputs = model.predict(edge_runner.load_inputs(args.input))
    except edge_runner.EdgeModelError as error:
        raise UsageError(str(error)) from error
    if edge_runner.CLASS_IDS not in outputs:
        raise UsageError(
            f"{args.model}: expected a classifier with a {edge_runner.PROBABILITIES!r} or "
            f"{edge_runner.CLASS_IDS!r} output, received outputs {sorted(outputs)}"
        )
    metadata_path = os.path.join(os.path.dirname(args.model), "metadata.json")
    labels = None
    if os.path.exists(metadata_path):
        with open(metadata_path) as handle:
            labels = json.load(handle).get("labels")
    class_ids = outputs[edge_runner.CLASS_IDS]
    probabilities = outputs.get(edge_runner.PROBABILITIES)
    for row, class_id in enumerate(class_ids):
        label = labels[class_id] if labels else str(class_id)
        shown = (
            f" (probability {probabilities[row, class_id]:.3f})"
            if probabilities is not None
            else ""
        )
        print(f"{row}: {label}{shown}")
    return 0


def _command_runs(args: argparse.Namespace) -> int:
    from pipelines import metadata
    from pipelines.local_run import read_summary

    home = _home(args.home)
    path = os.path.join(home, "metadata.sqlite")
    if not os.path.exists(path):
        raise UsageError(f"no runs yet: expected ML Metadata at {path}, found no file")
    store = metadata.open_store(path)
    runs = metadata.list_runs(store)
    print(f"{'run id':<38} {'started':<19} {'status':<9} {'accuracy':>8}  pushed version")
    for run in runs:
        summary = read_summary(os.path.join(home, "runs"), run.run_id) or {}
        accuracy = summary.get("metrics", {}).get("test_accuracy")
        started = datetime.datetime.fromtimestamp(run.created_ms / 1000)
        pushed = _pushed_version(store, run) or "-"
        shown = f"{accuracy:8.4f}" if accuracy is not None else f"{'-':>8}"
        print(f"{run.run_id:<38} {started:%Y-%m-%d %H:%M:%S} {run.status:<9} {shown}  {pushed}")
    return 0


def _pushed_version(store, run) -> str | None:
    from pipelines import metadata

    for stage in run.stages:
        if stage.node_id != "Pusher":
            continue
        for artifact in metadata.output_artifacts(store, stage.execution_id).get(
            "pushed_model", []
        ):
            if metadata.custom_property(artifact, "pushed"):
                return metadata.custom_property(artifact, "pushed_version")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the dlforge command line and returns its exit code."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        args = _parser().parse_args(argv)
        commands = {
            "run": _command_run,
            "compile": _command_compile,
            "edge": _command_edge,
            "runs": _command_runs,
        }
        return commands[args.command](args)
    except (UsageError, ConfigError, IngestError) as error:
        print(f"dlforge: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
