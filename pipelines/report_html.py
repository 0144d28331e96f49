"""Renders a RunReport as one self-contained HTML page: inline CSS and SVG, images as data URIs.

No script and no external resource, so the page opens the same from a disk, an artifact store's
web view or an e-mail attachment.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from pipelines.report import RunReport

STATE_COLOURS = {
    "complete": "#2e7d32",
    "cached": "#1565c0",
    "failed": "#c62828",
    "running": "#ef6c00",
}
SERIES_COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a")
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px;
       color: #212121; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f5f5f5; } td.text, th.text { text-align: left; }
.ok { color: #2e7d32; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
.muted { color: #757575; } figure { display: inline-block; margin: 4px 12px 4px 0; }
figcaption { font-size: 12px; text-align: center; } svg text { font: 11px system-ui, sans-serif; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f5f5f5; padding: 6px; }
"""


def _text(value) -> str:
    return html.escape(str(value))


def _verdict(passed: bool, yes: str = "passed", no: str = "failed") -> str:
    return f'<span class="ok">{yes}</span>' if passed else f'<span class="bad">{no}</span>'


def _table(header: Sequence[str] | None, rows: Sequence[Sequence], text_columns: int = 1) -> str:
    def cell(tag: str, index: int, value) -> str:
        kind = ' class="text"' if index < text_columns else ""
        return f"<{tag}{kind}>{value}</{tag}>"

    head = "".join(cell("th", index, _text(name)) for index, name in enumerate(header or ()))
    body = "".join(
        "<tr>" + "".join(cell("td", index, value) for index, value in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else _text(value)


def pipeline_graph(report: RunReport) -> str:
    """The stages as an SVG graph, one row per depth, coloured by state, with their seconds."""
    depth: dict[str, int] = {}
    for stage in report.stages:  # executions come in an order where upstream stages come first
        depth[stage.node_id] = 1 + max((depth.get(up, 0) for up in stage.upstream), default=-1)
    rows: dict[int, list] = {}
    for stage in report.stages:
        rows.setdefault(depth[stage.node_id], []).append(stage)
    box_width, box_height, gap_x, gap_y = 170, 40, 20, 34
    width = max(len(row) for row in rows.values()) * (box_width + gap_x) + gap_x
    height = len(rows) * (box_height + gap_y) + gap_y
    centres = {}
    for level, row in rows.items():
        left = (width - len(row) * (box_width + gap_x) + gap_x) / 2
        for index, stage in enumerate(row):
            x = left + index * (box_width + gap_x)
            centres[stage.node_id] = (x, gap_y + level * (box_height + gap_y))
    edges, boxes = [], []
    for stage in report.stages:
        x, y = centres[stage.node_id]
        for up in stage.upstream:
            ux, uy = centres[up]
            edges.append(
                f'<line x1="{ux + box_width / 2}" y1="{uy + box_height}" '
                f'x2="{x + box_width / 2}" y2="{y}" stroke="#9e9e9e"/>'
            )
        colour = STATE_COLOURS.get(stage.state, "#757575")
        boxes.append(
            f"<g><title>{_text(stage.node_id)}: {_text(stage.state)}</title>"
            f'<rect x="{x}" y="{y}" width="{box_width}" height="{box_height}" rx="6" '
            f'fill="white" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + 8}" y="{y + 16}" font-weight="600">{_text(stage.node_id)}</text>'
            f'<text x="{x + 8}" y="{y + 32}" fill="{colour}">{_text(stage.state)} '
            f"{stage.seconds:.1f} s</text></g>"
        )
    return (
        f'<svg class="graph" width="{width}" height="{height}" role="img" '
        f'aria-label="pipeline graph">{"".join(edges)}{"".join(boxes)}</svg>'
    )


def line_chart(title: str, series: dict[str, Sequence[float]], x_label: str) -> str:
    """An SVG line chart of a few series over their index."""
    width, height, margin = 420, 220, 40
    values = [value for points in series.values() for value in points]
    if not values:
        return ""
    low, high = min(values), max(values)
    high = high if high > low else low + 1
    longest = max(len(points) for points in series.values())

    def position(index: int, value: float) -> str:
        x = margin + index * (width - 2 * margin) / max(longest - 1, 1)
        y = height - margin - (value - low) * (height - 2 * margin) / (high - low)
        return f"{x:.1f},{y:.1f}"

    lines, legend = [], []
    for number, (name, points) in enumerate(series.items()):
        colour = SERIES_COLOURS[number % len(SERIES_COLOURS)]
        path = " ".join(position(index, value) for index, value in enumerate(points))
        lines.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend.append(
            f'<text x="{width - margin - 90}" y="{margin + 14 * number}" fill="{colour}">'
            f"{_text(name)}</text>"
        )
    axes = (
        f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" '
        f'y2="{height - margin}" stroke="#616161"/>'
        f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="#616161"/>'
        f'<text x="{margin}" y="{margin - 8}">{high:.3g}</text>'
        f'<text x="{margin}" y="{height - margin + 14}">{low:.3g}</text>'
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">{_text(x_label)}</text>'
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="600">{_text(title)}</text>'
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{_text(title)}">'
        f"{axes}{''.join(lines)}{''.join(legend)}</svg>"
    )


def bar_chart(title: str, bars: dict[str, float], upper: float | None = None) -> str:
    """An SVG bar chart, one bar per key."""
    if not bars:
        return ""
    width, height, margin = max(240, 28 * len(bars) + 60), 200, 30
    top = upper if upper is not None else max(bars.values()) or 1
    step = (width - 2 * margin) / len(bars)
    items = []
    for index, (name, value) in enumerate(bars.items()):
        bar_height = (height - 2 * margin) * value / top
        x = margin + index * step
        items.append(
            f'<rect x="{x + 3:.1f}" y="{height - margin - bar_height:.1f}" '
            f'width="{step - 6:.1f}" height="{bar_height:.1f}" fill="#1565c0">'
            f"<title>{_text(name)}: {value:.4g}</title></rect>"
            f'<text x="{x + step / 2:.1f}" y="{height - margin + 14}" '
            f'text-anchor="middle">{_text(name)}</text>'
        )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{_text(title)}">'
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="600">{_text(title)}</text>'
        f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" '
        f'y2="{height - margin}" stroke="#616161"/>{"".join(items)}</svg>'
    )


def image(values: Sequence[float], shape: Sequence[int], scale: int = 6) -> str:
    """A grey-scale image (rows x columns of raw values) as SVG rectangles."""
    rows, columns = shape[0], shape[1]
    top = max(values) or 1
    cells = []
    for index, value in enumerate(values[: rows * columns]):
        shade = 255 - int(255 * value / top)
        cells.append(
            f'<rect x="{(index % columns) * scale}" y="{(index // columns) * scale}" '
            f'width="{scale}" height="{scale}" fill="rgb({shade},{shade},{shade})"/>'
        )
    return (
        f'<svg width="{columns * scale}" height="{rows * scale}" role="img">{"".join(cells)}</svg>'
    )


def _overview(report: RunReport) -> str:
    summary = report.summary
    facts = [
        (
            "status",
            _verdict(
                summary.get("status") == "complete",
                summary.get("status", "?"),
                summary.get("status", "unknown"),
            ),
        ),
        ("pipeline", _text(summary.get("pipeline", ""))),
        ("model family", _text(summary.get("model_family", ""))),
        ("total seconds", _text(summary.get("total_seconds", ""))),
        ("code version", _text(summary.get("code_version") or "not recorded")),
    ]
    if summary.get("error"):
        facts.append(("error", f'<span class="bad">{_text(summary["error"])}</span>'))
    if "test_accuracy" in summary.get("metrics", {}):
        facts.append(("test accuracy", f"{summary['metrics']['test_accuracy']:.4f}"))
    if summary.get("status") == "complete":
        facts.append(("blessed", _verdict(summary.get("blessed"), "yes", "no")))
    return _table(None, facts, text_columns=2)


def _data_section(report: RunReport) -> str:
    if not report.statistics:
        return '<p class="muted">No data statistics in this run.</p>'
    parts = []
    counts = {
        split: max((feature.count + feature.missing for feature in features), default=0)
        for split, features in report.statistics.items()
    }
    parts.append(_table(["split", "examples"], [(s, n) for s, n in counts.items()]))
    for split, bars in report.label_counts.items():
        parts.append(f"<figure>{bar_chart(f'labels in {split}', bars)}</figure>")
    means = {
        split: [feature.mean for feature in features]
        for split, features in report.statistics.items()
    }
    parts.append(f"<figure>{line_chart('feature means', means, 'feature index')}</figure>")
    rows = []
    for split, features in report.statistics.items():
        rows += [
            (
                _text(split),
                _text(feature.name),
                feature.count,
                feature.missing,
                _number(feature.minimum, 2),
                _number(feature.maximum, 2),
                _number(feature.mean, 3),
                _number(feature.std_dev, 3),
            )
            for feature in features
        ]
    header = ["split", "feature", "count", "missing", "min", "max", "mean", "std dev"]
    parts.append(
        f"<details><summary>every feature ({len(rows)} rows)</summary>"
        f"{_table(header, rows, text_columns=2)}</details>"
    )
    return "".join(parts)


def _validation_section(report: RunReport) -> str:
    parts = []
    for split, found in report.anomalies.items():
        verdict = _verdict(not found, "no anomalies", f"{len(found)} anomalies")
        items = "".join(f"<li>{_text(item)}</li>" for item in found)
        parts.append(f"<p>TFDV, split {_text(split)}: {verdict}</p><ul>{items}</ul>")
    for stage, document in report.gate_reports.items():
        findings = document.get("findings", [])
        items = "".join(f"<li>{_text(_finding(item))}</li>" for item in findings)
        parts.append(
            f"<p>{_text(stage)}: {_verdict(document['passed'])}"
            f"{f', {len(findings)} findings' if findings else ''}</p><ul>{items}</ul>"
        )
    return "".join(parts) or '<p class="muted">No validation stage ran.</p>'


def _finding(item) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{key} {value}" for key, value in item.items())
    return str(item)


def _tuner_section(report: RunReport) -> str:
    if not report.tuner_trials:
        return '<p class="muted">No tuning in this run.</p>'
    names = sorted({key for trial in report.tuner_trials for key in trial} - {"trial_id", "score"})
    rows = [
        (
            _text(trial.get("trial_id", "")),
            _number(trial.get("score", ""), 4),
            *(_hyperparameter(trial.get(name, "")) for name in names),
        )
        for trial in sorted(report.tuner_trials, key=lambda item: -item.get("score", 0))
    ]
    return _table(["trial", "score", *names], rows)


def _hyperparameter(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _text(value)


def _training_section(report: RunReport) -> str:
    if not report.history:
        return '<p class="muted">The Trainer did not run.</p>'
    charts = []
    # One chart per metric, with its validation twin (val_<metric>) when there is one.
    for metric in [name for name in report.history if not name.startswith("val_")]:
        series = {
            name: values
            for name, values in report.history.items()
            if name in (metric, f"val_{metric}")
        }
        charts.append(f"<figure>{line_chart(metric, series, report.history_axis)}</figure>")
    return "".join(charts)


def _evaluation_section(report: RunReport) -> str:
    summary = report.summary
    metrics = summary.get("metrics", {})
    if not metrics:
        return '<p class="muted">The Evaluator did not run.</p>'
    shown = "; ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in metrics.items())
    parts = [f"<p>{_text(shown)}; blessed: {_verdict(summary.get('blessed'), 'yes', 'no')}</p>"]
    gate = report.baseline_gate
    if gate:
        rows = [
            ("model", f"{gate['model_rmse']:.4f}", f"{gate['model_mae']:.4f}"),
            (
                "seasonal naive",
                f"{gate['seasonal_naive_rmse']:.4f}",
                f"{gate['seasonal_naive_mae']:.4f}",
            ),
        ]
        parts.append(
            f"<p>BaselineGate: {_text(gate['reason'])}</p>"
            + _table(["forecast (test split)", "RMSE", "MAE"], rows)
        )
    parts += [f'<p class="bad">{_text(line)}</p>' for line in summary.get("blessing_failures", [])]
    if report.family_evaluation:
        parts.append(_family_evaluation(report))
    elif report.baseline_diff:
        rows = [(name, f"{value:+.4f}") for name, value in sorted(report.baseline_diff.items())]
        parts.append(
            "<p>Against the latest blessed model:</p>" + _table(["metric", "change"], rows)
        )
    else:
        parts.append('<p class="muted">No baseline: no model was blessed before this one.</p>')
    by_label = {
        label: value for label, value in sorted(summary.get("accuracy_by_label", {}).items())
    }
    if by_label:
        parts.append(f"<figure>{bar_chart('accuracy per label', by_label, upper=1.0)}</figure>")
    if report.confusion:
        header = ["actual \\ predicted", *map(str, range(len(report.confusion)))]
        rows = [
            (
                str(actual),
                *(_confusion_cell(actual, predicted, count) for predicted, count in enumerate(row)),
            )
            for actual, row in enumerate(report.confusion)
        ]
        parts.append("<p>Confusion matrix (test split):</p>" + _table(header, rows))
    return "".join(parts)


def _family_evaluation(report: RunReport) -> str:
    """The FamilyEvaluator's checks, figures (beside the latest blessed model's), sample grids
    and generated text."""
    document = report.family_evaluation
    checks = "".join(
        f"<li>{_verdict(check['passed'])}: {_text(check['description'])}</li>"
        for check in document["checks"]
    )
    baseline = document.get("baseline_metrics") or {}
    rows = [
        (
            _text(name),
            _number(value),
            _number(baseline[name]) if name in baseline else '<span class="muted">-</span>',
        )
        for name, value in document["metrics"].items()
    ]
    parts = [
        f"<p>FamilyEvaluator ({_text(document['family'])}, judged by "
        f"{_text(document['metric'].replace('_', ' '))}):</p><ul>{checks}</ul>",
        _table(["figure (test split)", "this model", "latest blessed model"], rows),
    ]
    if not baseline:
        parts.append('<p class="muted">No baseline: no model was blessed before this one.</p>')
    parts += [
        f'<figure><img alt="{_text(name)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{_text(name.replace('_', ' '))}</figcaption></figure>"
        for name, png in report.family_grids.items()
    ]
    parts += [
        f"<p>Generated from the prompt {_text(repr(item['prompt']))} at temperature "
        f"{item['temperature']:g}:</p><pre>{_text(item['prompt'] + item['text'])}</pre>"
        for item in document.get("samples", [])
    ]
    return "".join(parts)


def _confusion_cell(actual: int, predicted: int, count: float) -> str:
    if not count:
        return '<span class="muted">0</span>'
    kind = "ok" if actual == predicted else "bad"
    return f'<span class="{kind}">{count:.0f}</span>'


def _samples_section(report: RunReport) -> str:
    if not report.samples:
        return '<p class="muted">No trained model or no test examples.</p>'
    figures = []
    for sample in report.samples:
        right = sample["label"] == sample["predicted"]
        picture = image(sample["features"], report.image_shape) if report.image_shape else ""
        figures.append(
            f"<figure>{picture}<figcaption>label {sample['label']}<br>"
            f"{_verdict(right, 'predicted', 'predicted')} {sample['predicted']} "
            f"({sample['probability']:.2f})</figcaption></figure>"
        )
    return "".join(figures)


def _compression_section(report: RunReport) -> str:
    compression = report.compression
    if not compression:
        return '<p class="muted">No device model was made in this run.</p>'
    if "candidates" not in compression:  # a policy: one conversion, checked action by action
        return (
            f"<p>{_text(compression['recipe'])} TFLite, {compression['size_bytes'] / 1024:.1f} KB: "
            f"the same action as the SavedModel on {compression['actions_agreeing']} of "
            f"{compression['observations_checked']} states visited in "
            f"{compression['episodes']} seeded episodes; "
            f"{_verdict(compression['parity'], 'blessed', 'not blessed')}</p>"
        )
    reference = compression["reference"]
    rows = [
        (
            "SavedModel",
            _number(reference["accuracy"]),
            "",
            "",
            _number(reference["latency_ms_p50"], 3),
            "reference",
        )
    ]
    for candidate in compression["candidates"]:
        rows.append(
            (
                _text(candidate["recipe"]),
                _number(candidate["accuracy"]),
                f"{candidate['size_bytes'] / 1024:.1f}",
                f"{candidate['gzipped_bytes'] / 1024:.1f}",
                _number(candidate["latency_ms_p50"], 3),
                _verdict(True, "chosen") if candidate["recipe"] == compression["chosen"] else "",
            )
        )
    header = ["model", "accuracy", "KB", "gzipped KB", "p50 ms", ""]
    plots = "".join(
        f'<figure><img alt="size against accuracy" src="data:image/png;base64,{png}"></figure>'
        for png in report.compression_plots
    )
    budget = compression.get("accuracy_budget")
    return (
        f"<p>Accuracy budget {budget}; chosen: {_text(compression.get('chosen') or 'none')}</p>"
        + _table(header, rows)
        + plots
    )


def _pushes_section(report: RunReport) -> str:
    if not report.pushes:
        return '<p class="muted">Nothing was pushed in this run.</p>'
    rows = [
        (
            _text(push["stage"]),
            _verdict(push["pushed"], "pushed", "not pushed"),
            _text(push["version"]),
            _text(push["destination"]),
        )
        for push in report.pushes
    ]
    return _table(["stage", "", "version", "destination"], rows, text_columns=4)


SECTIONS = (
    ("overview", "Overview", _overview),
    ("pipeline", "Pipeline", pipeline_graph),
    ("data", "Data statistics", _data_section),
    ("validation", "Validation", _validation_section),
    ("tuning", "Tuner trials", _tuner_section),
    ("training", "Training curves", _training_section),
    ("evaluation", "Evaluation", _evaluation_section),
    ("samples", "Sample predictions", _samples_section),
    ("compression", "Compression", _compression_section),
    ("pushes", "Pushed models", _pushes_section),
)


def render(report: RunReport) -> str:
    """The report as one HTML document."""
    body = "".join(
        f'<section id="{key}"><h2>{_text(title)}</h2>{make(report)}</section>'
        for key, title, make in SECTIONS
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>dlforge run {_text(report.run_id)}</title><style>{CSS}</style></head>"
        f"<body><h1>dlforge run {_text(report.run_id)}</h1>{body}</body></html>"
    )
