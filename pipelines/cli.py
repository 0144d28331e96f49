"""The `dlforge` command line: the one place that reads flags and the environment.

TensorFlow is imported only by the commands that need it, so `dlforge runs` and `--help` are fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Sequence

from models import registry
from models.data.ingest import IngestError
from models.files import write_text_atomically
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
        "--model",
        "--agent",
        dest="model",
        help="model family (an agent for cartpole and frozenlake; `dlforge families`); "
        "default: the pipeline's own",
    )
    run.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")
    run.add_argument("--config", help="TOML config file (see configs/)")
    run.add_argument(
        "--data",
        help="CSV or TFRecord file, or a folder of them, to ingest as a new span before the run",
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
    compile_command.add_argument(
        "--model", help="model family of the pipeline (default: the pipeline's own)"
    )
    compile_command.add_argument("--config", help="TOML config file (see configs/)")
    compile_command.add_argument("--tune", action=argparse.BooleanOptionalAction, default=None)

    submit = commands.add_parser(
        "submit", help="submit a compiled pipeline to Kubeflow Pipelines or Vertex AI"
    )
    submit.add_argument("file", help="the JSON file written by `dlforge compile`")
    where = submit.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8888")
    where.add_argument("--vertex", action="store_true", help="submit to Vertex AI Pipelines")
    submit.add_argument("--project", help="Google Cloud project (--vertex)")
    submit.add_argument("--region", help="Google Cloud region, e.g. europe-west4 (--vertex)")
    submit.add_argument("--experiment", help="Kubeflow experiment (default: Default)")
    submit.add_argument("--run-name", help="run name (default: <pipeline>-<UTC time>)")
    submit.add_argument(
        "--param", action="append", default=[], help="pipeline parameter NAME=VALUE (repeatable)"
    )
    submit.add_argument("--service-account", help="service account the run's steps run as")
    submit.add_argument(
        "--dry-run", action="store_true", help="print exactly what would be sent; send nothing"
    )

    edge = commands.add_parser("edge", help="run a pushed TFLite model as a device would")
    edge_commands = edge.add_subparsers(dest="edge_command", required=True, parser_class=_Parser)
    edge_predict = edge_commands.add_parser(
        "predict", help="predict with a .tflite model (tflite-runtime and numpy only)"
    )
    edge_predict.add_argument("model", help="the .tflite file (metadata.json beside it is read)")
    edge_predict.add_argument("--input", required=True, help=".npy, .csv or .json rows")

    validate = commands.add_parser(
        "validate",
        help="check data with the run's gates (schema, expectations, drift, skew), no training",
    )
    validate.add_argument(
        "--data", required=True, help="CSV or TFRecord file, or a folder of them, to check"
    )
    validate.add_argument("--home", help="home whose latest blessed model gives the drift baseline")
    validate.add_argument("--verbose", action="store_true", help="show TFDV and GX logs")

    commands.add_parser(
        "families", help="list the model families: pipeline, task, metric, TFLite or why not"
    )

    runs = commands.add_parser("runs", help="list past runs from ML Metadata, newest first")
    runs.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")

    artifacts = commands.add_parser("artifacts", help="list the artifacts a run produced")
    artifacts.add_argument(
        "run_id", nargs="?", help="a run id from `dlforge runs` (default: latest)"
    )
    artifacts.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")

    lineage = commands.add_parser(
        "lineage", help="what produced a pushed model: run, data span, schema, settings, evaluation"
    )
    lineage.add_argument("model", help="a pushed version number, or a pushed model's path")
    lineage.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")

    report = commands.add_parser("report", help="write a run's HTML report")
    report.add_argument("run_id", nargs="?", help="a run id from `dlforge runs` (default: latest)")
    report.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")
    report.add_argument(
        "-o", "--output", help="HTML file to write (default: <home>/runs/<run id>/report.html)"
    )
    report.add_argument("--open", action="store_true", help="open it in the web browser")

    tensorboard = commands.add_parser(
        "tensorboard", help="start TensorBoard on the training logs of the runs in a home"
    )
    tensorboard.add_argument("run_id", nargs="?", help="only this run (default: every run)")
    tensorboard.add_argument(
        "--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)"
    )
    tensorboard.add_argument("--port", type=int, default=6006, help="port on 127.0.0.1 (6006)")

    # Flag names are tensorflow_model_server's, so the same command lines serve either way.
    serve = commands.add_parser(
        "serve", help="serve pushed SavedModels over TF Serving's REST and gRPC APIs"
    )
    serve.add_argument("--model_name", default="default", help="name of the model (default)")
    serve.add_argument("--model_base_path", help="folder holding the numeric version folders")
    serve.add_argument("--model_config_file", help="text-format ModelServerConfig (several models)")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port (8500)")
    serve.add_argument("--rest_api_port", type=int, default=0, help="REST port (0: no REST)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    serve.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    serve.add_argument("--enable_batching", action="store_true")
    serve.add_argument("--batching_parameters_file", help="text-format BatchingParameters")
    serve.add_argument("--rest_api_timeout_in_ms", type=int, default=30000)
    serve.add_argument(
        "--rest_api_num_threads",
        type=int,
        default=0,
        help="threads for REST model calls without batching, Classify and Regress (0: 4 per CPU)",
    )
    serve.add_argument(
        "--max_body_bytes", type=int, default=32 * 1024 * 1024, help="largest request accepted"
    )
    serve.add_argument(
        "--traffic_split_file", help="TOML A/B split per model: [model] label_or_version = weight"
    )
    serve.add_argument(
        "--request_log_dir", help="log sampled requests as tf.Examples here (e.g. <home>/logs)"
    )
    serve.add_argument("--request_log_sampling_rate", type=float, default=0.1)

    drift = commands.add_parser(
        "drift", help="compare logged serving traffic with the training statistics (TFDV)"
    )
    drift.add_argument("--model", required=True, help="served model name (its logs are read)")
    drift.add_argument("--home", help="dlforge home (default: $DLFORGE_HOME or ./dlforge_home)")
    drift.add_argument("--logs", help="request log folder (default: <home>/logs)")
    drift.add_argument("--training_stats", help="FeatureStats.pb (default: latest in the home)")
    drift.add_argument("--threshold", type=float, default=0.3, help="Jensen-Shannon divergence")

    predict = commands.add_parser("predict", help="send rows to a TF-Serving-compatible server")
    predict.add_argument("--server", required=True, help="HOST:PORT of its REST or gRPC port")
    predict.add_argument("--model", required=True, help="model name")
    predict.add_argument("--input", required=True, help=".json or .npy rows, or an image file")
    predict.add_argument("--grpc", action="store_true", help="use gRPC (default: REST)")
    predict.add_argument("--signature_name", default="serving_dense")
    predict.add_argument("--labels", help="label names: a JSON list or one per line")
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
    width = max(len(stage) for stage in ("stage", *summary.stage_states))
    print(f"  {'stage':<{width}} {'status':<9} {'seconds':>8}")
    for stage, state in summary.stage_states.items():
        seconds = summary.stage_seconds.get(stage)
        shown = f"{seconds:8.1f}" if seconds is not None else f"{'-':>8}"
        print(f"  {stage:<{width}} {state:<9} {shown}")
    if summary.error:
        print(f"  error: {summary.error}")
    for name, value in summary.metrics.items():
        print(f"  {name.replace('_', ' ')}: {value:.4f}")
    if summary.status == "complete":
        print(f"  blessed: {'yes' if summary.blessed else 'no'}")
        for failure in summary.blessing_failures:
            print(f"    {failure}")
        if summary.pushed:
            print(f"  pushed: {summary.pushed_path} (version {summary.pushed_version})")
        else:
            print("  pushed: no")
        device = summary.device_model
        if device.get("chosen") and "accuracy" in device:
            print(
                f"  device model: {device['chosen']} TFLite, {device['size_bytes'] / 1024:.0f} KB, "
                f"test accuracy {device['accuracy']:.4f}"
            )
        elif device.get("chosen"):
            print(
                f"  device model: {device['chosen']} TFLite, {device['size_bytes'] / 1024:.0f} KB, "
                f"same actions as the SavedModel on {device['actions_agreeing']} of "
                f"{device['observations_checked']} visited states"
            )
        elif device.get("report"):
            print("  device model: no candidate within the accuracy budget")
        if device.get("report"):
            plot = f" (plot: {device['plot']})" if device.get("plot") else ""
            print(f"  compression report: {device['report']}{plot}")
        if device.get("pushed_path"):
            print(f"  pushed to devices: {device['pushed_path']}")


def run_header(config: config_lib.PipelineConfig) -> str:
    """The line `dlforge run` starts with: the pipeline, whether it tunes, where it writes."""
    from pipelines import catalog

    # An agent's pipeline has no Tuner stage (its search runs from Python: models.rl.tuning).
    tuned = config.tune and catalog.get_pipeline(config.pipeline).data_module != ""
    return (
        f"dlforge: running {config.pipeline_name} "
        f"({'with' if tuned else 'without'} tuning) in {config.home}"
    )


def _command_run(args: argparse.Namespace) -> int:
    from pipelines.local_run import prepare_data, run_pipeline

    config = _run_config(args)
    # Ingest first: a bad file is reported before TensorFlow is imported. The run then reads
    # the latest span, which now holds the user's rows.
    prepared = prepare_data(config)
    config = dataclasses.replace(config, data_path="")
    console.configure_logs(args.verbose)
    print(run_header(config))
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


def _command_submit(args: argparse.Namespace) -> int:
    from pipelines import submit

    try:
        return submit.run_command(args, os.environ)
    except submit.SubmitError as error:
        raise UsageError(str(error)) from error


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


def _command_validate(args: argparse.Namespace) -> int:
    console.configure_logs(args.verbose)
    from pipelines import validate

    seed = config_lib.PipelineConfig().data_seed
    return validate.run(args.data, _home(args.home), seed=seed)


def _command_families(args: argparse.Namespace) -> int:
    from pipelines import catalog

    rows = [
        (name, card.pipeline, card.task, card.metric, card.tflite_signature or "no")
        for name, card in sorted(registry.FAMILIES.items(), key=lambda item: item[1].pipeline)
    ]
    header = ("family", "pipeline", "task", "metric", "TFLite")
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )
    notes = [(name, card) for name, card in sorted(registry.FAMILIES.items()) if card.tflite_note]
    if notes:
        print("\nNo TFLite model:")
        for name, card in notes:
            print(f"  {name}: {card.tflite_note}")
    print("\nPipelines (default family):")
    for name, entry in catalog.PIPELINES.items():
        print(f"  {name} ({entry.default_family}): {entry.summary}")
    return 0


def _command_runs(args: argparse.Namespace) -> int:
    from pipelines import metadata
    from pipelines.local_run import read_summary

    home = _home(args.home)
    store = _open_home_store(home)
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


def _open_home_store(home: str):
    from pipelines import metadata

    path = os.path.join(home, "metadata.sqlite")
    if not os.path.exists(path):
        raise UsageError(f"no runs yet: expected ML Metadata at {path}, found no file")
    return metadata.open_store(path)


def _command_artifacts(args: argparse.Namespace) -> int:
    from pipelines import lineage, metadata

    store = _open_home_store(_home(args.home))
    try:
        run = metadata.find_run(store, args.run_id)
    except LookupError as error:
        raise UsageError(str(error)) from error
    print("\n".join(lineage.format_artifacts(run.run_id, lineage.run_artifacts(store, run))))
    return 0


def _command_lineage(args: argparse.Namespace) -> int:
    from pipelines import lineage

    home = _home(args.home)
    store = _open_home_store(home)
    try:
        found = lineage.find_lineage(store, os.path.join(home, "runs"), args.model)
    except lineage.LineageError as error:
        raise UsageError(str(error)) from error
    print("\n\n".join("\n".join(lineage.format_lineage(item)) for item in found))
    return 0


def tensorboard_command(home: str, run_id: str | None, port: int) -> list[str]:
    """The TensorBoard command line for the training logs of a home's runs (or one run)."""
    from pipelines import lineage, metadata

    store = _open_home_store(home)
    try:
        runs = metadata.list_runs(store) if run_id is None else [metadata.find_run(store, run_id)]
    except LookupError as error:
        raise UsageError(str(error)) from error
    log_dirs = lineage.training_log_dirs(store, runs)
    if not log_dirs:
        raise UsageError(f"no training logs: no Trainer ran in {run_id or 'any run of ' + home}")
    spec = ",".join(f"{name}:{path}" for name, path in sorted(log_dirs.items()))
    executable = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    return [executable, "--logdir_spec", spec, "--host", "127.0.0.1", "--port", str(port)]


def _command_report(args: argparse.Namespace) -> int:
    console.configure_logs(verbose=False)
    from pipelines import report, report_html

    home = _home(args.home)
    try:
        collected = report.collect(home, args.run_id)
    except LookupError as error:
        raise UsageError(str(error)) from error
    path = args.output or os.path.join(home, "runs", collected.run_id, "report.html")
    try:
        write_text_atomically(path, report_html.render(collected))
    except OSError as error:
        raise UsageError(f"cannot write the report to {path}: {error.strerror}") from error
    print(f"dlforge: report of run {collected.run_id} written to {path}")
    if args.open:
        import webbrowser

        webbrowser.open(f"file://{os.path.abspath(path)}")
    return 0


def _command_tensorboard(args: argparse.Namespace) -> int:
    command = tensorboard_command(_home(args.home), args.run_id, args.port)
    print(f"dlforge: TensorBoard on http://127.0.0.1:{args.port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(command)


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


def _command_serve(args: argparse.Namespace) -> int:
    from serving import commands as serving_commands
    from serving.config import ConfigError as ServingConfigError

    try:
        options = serving_commands.server_options(
            model_name=args.model_name,
            model_base_path=args.model_base_path,
            model_config_file=args.model_config_file,
            host=args.host,
            port=args.port,
            rest_api_port=args.rest_api_port,
            poll_wait_seconds=args.file_system_poll_wait_seconds,
            enable_batching=args.enable_batching,
            batching_parameters_file=args.batching_parameters_file,
            rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
            rest_api_num_threads=args.rest_api_num_threads,
            max_body_bytes=args.max_body_bytes,
            traffic_split_file=args.traffic_split_file,
            request_log_dir=args.request_log_dir,
            request_log_sampling_rate=args.request_log_sampling_rate,
        )
        return serving_commands.serve(options)
    except ServingConfigError as error:
        raise UsageError(str(error)) from error


def _command_predict(args: argparse.Namespace) -> int:
    from serving import commands as serving_commands
    from serving.client import ClientError

    try:
        lines = serving_commands.predict(
            server=args.server,
            model=args.model,
            input_path=args.input,
            use_grpc=args.grpc,
            signature_name=args.signature_name,
            labels_path=args.labels,
        )
    except (ValueError, ClientError, OSError) as error:
        raise UsageError(str(error)) from error
    print("\n".join(lines))
    return 0


def _command_drift(args: argparse.Namespace) -> int:
    from pipelines import drift

    home = _home(args.home)
    try:
        report = drift.check(
            args.model,
            log_dir=args.logs or os.path.join(home, "logs"),
            training_statistics=args.training_stats
            or drift.latest_training_statistics(home, args.model),
            threshold=args.threshold,
        )
    except drift.DriftError as error:
        raise UsageError(str(error)) from error
    print("\n".join(drift.summary_lines(args.model, report)))
    return 1 if report.drifted else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the dlforge command line and returns its exit code."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        args = _parser().parse_args(argv)
        commands = {
            "run": _command_run,
            "compile": _command_compile,
            "submit": _command_submit,
            "edge": _command_edge,
            "families": _command_families,
            "runs": _command_runs,
            "validate": _command_validate,
            "artifacts": _command_artifacts,
            "lineage": _command_lineage,
            "tensorboard": _command_tensorboard,
            "report": _command_report,
            "serve": _command_serve,
            "predict": _command_predict,
            "drift": _command_drift,
        }
        return commands[args.command](args)
    except (UsageError, ConfigError, IngestError) as error:
        print(f"dlforge: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `dlforge artifacts | head`: the reader has gone, stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
