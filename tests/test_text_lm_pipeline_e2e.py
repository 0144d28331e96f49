"""The text_lm pipeline end to end through the CLI with a tiny budget: Python documentation
passages -> validation -> Transform (character ids) -> a transformer language model trained
without tuning -> the FamilyEvaluator (test perplexity against the unigram model of the same
run, generated samples) -> Pusher, read back through the run summary and the HTML report."""

import json
import os

import pytest
import tensorflow as tf

from models import text_models
from pipelines import cli, report, report_html

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("text_lm_home")
    config = home / "tiny.toml"
    config.write_text("train_steps = 150\n[trainer]\nepochs = 1\n")
    code = cli.main(["run", "text_lm", "--no-tune", "--home", str(home), "--config", str(config)])
    (run_id,) = os.listdir(home / "runs")
    with open(home / "runs" / run_id / "summary.json") as handle:
        return code, str(home), json.load(handle)


def test_the_language_model_beats_the_unigram_model_and_is_pushed(lm_run):
    code, home, summary = lm_run

    assert code == 0, summary["error"]
    assert summary["pipeline"] == "text_lm_transformer_lm"
    metrics = summary["metrics"]
    assert metrics["test_perplexity"] < metrics["unigram_perplexity"]
    assert metrics["unigram_perplexity"] < metrics["uniform_perplexity"] == 96
    assert summary["blessed"] and summary["pushed"], summary["blessing_failures"]
    assert summary["pushed_path"].startswith(os.path.join(home, "serving", "text_lm_"))


def test_the_pushed_language_model_generates_text_from_a_prompt(lm_run):
    _, _, summary = lm_run
    loaded = tf.saved_model.load(summary["pushed_path"])

    outputs = loaded.signatures[text_models.GENERATE_SIGNATURE](
        prompt=tf.constant("The "),
        num_characters=tf.constant(40),
        temperature=tf.constant(0.0),
        seed=tf.constant(0, tf.int64),
    )

    assert len(outputs[text_models.GENERATED_TEXT].numpy().decode("utf-8")) == 40


def test_the_report_shows_the_perplexities_and_the_generated_samples(lm_run):
    _, home, summary = lm_run

    collected = report.collect(home, summary["run_id"])
    html = report_html.render(collected)

    samples = collected.family_evaluation["samples"]
    assert [item["prompt"] for item in samples[::2]] == ["The ", "def ", "import "]
    assert all(len(item["text"]) == 160 for item in samples)
    assert "FamilyEvaluator (transformer_lm, judged by test perplexity)" in html
    assert "unigram perplexity" in html
    assert html.count("<pre>") == len(samples)
    assert "No baseline: no model was blessed before this one." in html
