"""The run report's rendering, on reports made by hand, and the browser check it is tested with.

The report of real runs is tested end to end in tests/test_pipeline_e2e.py.
"""

import json
import re

from pipelines import cli, report_html
from pipelines.report import RunReport, StageView
from tests.browser import Chromium

SCRIPT = "JSON.stringify(Array.from(document.images).map(i => i.complete && i.naturalWidth > 0))"


def _report(**values) -> RunReport:
    stages = [
        StageView("CsvExampleGen", "complete", 3.0, ()),
        StageView("StatisticsGen", "complete", 6.0, ("CsvExampleGen",)),
        StageView("Trainer", "failed", 1.5, ("CsvExampleGen", "StatisticsGen")),
    ]
    summary = {"status": "failed", "error": "Trainer: <boom> & more", "pipeline": "digits_cnn"}
    return RunReport(run_id="run-1", summary=summary, stages=stages, **values)


def test_pipeline_graph_draws_each_stage_below_its_inputs_with_its_state():
    svg = report_html.pipeline_graph(_report())

    boxes = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)"[^>]*stroke="(#\w+)"', svg)
    assert len(boxes) == 3
    heights = [float(y) for _, y, _ in boxes]
    assert heights[0] < heights[1] < heights[2]  # Trainer reads both: it is a row lower
    assert boxes[2][2] == report_html.STATE_COLOURS["failed"]
    assert svg.count("<line") == 3
    assert "failed 1.5 s" in svg


def test_text_from_the_run_is_escaped():
    page = report_html.render(_report())

    assert "Trainer: &lt;boom&gt; &amp; more" in page
    assert "<boom>" not in page


def test_sections_say_what_did_not_run():
    page = report_html.render(_report())

    assert "No data statistics in this run." in page
    assert "The Trainer did not run." in page
    assert "No tuning in this run." in page
    assert "Nothing was pushed in this run." in page


def test_confusion_matrix_and_samples_mark_right_and_wrong():
    report = _report(
        confusion=[[5.0, 1.0], [0.0, 4.0]],
        samples=[
            {"features": [0.0] * 63 + [16.0], "label": 1, "predicted": 1, "probability": 0.9},
            {"features": [16.0] * 64, "label": 0, "predicted": 1, "probability": 0.6},
        ],
        image_shape=(8, 8, 1),
    )
    report.summary.update(metrics={"test_accuracy": 0.9}, accuracy_by_label={"0": 0.8, "1": 1.0})
    page = report_html.render(report)

    assert '<span class="ok">5</span>' in page
    assert '<span class="bad">1</span>' in page
    samples = page.split('id="samples"')[1].split("</section>")[0]
    assert samples.count("<figure>") == 2
    assert samples.count('fill="rgb(0,0,0)"') == 1 + 64  # one black pixel, then a black image
    assert '<span class="bad">predicted</span> 1 (0.60)' in samples


def test_a_report_without_scripts_or_broken_images_passes_the_browser_check(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(report_html.render(_report()))

    with Chromium() as browser:
        visit = browser.visit(f"file://{page}", SCRIPT)

    assert visit.console_errors == []
    assert json.loads(visit.value) == []
    assert visit.screenshot_png.startswith(b"\x89PNG")


def test_browser_check_sees_console_errors_and_broken_images(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<img src="data:image/png;base64,AAAA"><script>console.error("boom"); missing();</script>'
    )

    with Chromium() as browser:
        visit = browser.visit(f"file://{page}", SCRIPT)

    assert json.loads(visit.value) == [False]
    assert any("boom" in error for error in visit.console_errors)
    assert len(visit.console_errors) == 2


def test_report_of_a_home_without_runs_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["report", "--home", str(tmp_path)]) == 2
    assert "no runs yet" in capsys.readouterr().err
