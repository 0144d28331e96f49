"""The generative pipeline end to end with a tiny budget: digits -> validation -> Transform ->
a VAE trained without tuning -> the FamilyEvaluator (test ELBO against the mean-image Gaussian,
a PNG grid of samples) -> Pusher; then a second run, judged against the first's blessed model,
read back through the run summary and the HTML report."""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import generative
from pipelines import report, report_html
from pipelines.config import from_mapping
from pipelines.local_run import run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def vae_runs(tmp_path_factory):
    config = from_mapping(
        {
            "pipeline": "generative",
            "home": str(tmp_path_factory.mktemp("generative_home")),
            "tune": False,
            "train_steps": 200,
            "trainer": {"family": "vae", "epochs": 1},
        }
    )
    first = run_pipeline(config, progress=lambda line: None)
    second = run_pipeline(config, progress=lambda line: None)
    return config, first, second


def test_the_vae_beats_the_mean_image_gaussian_and_is_pushed(vae_runs):
    config, summary, _ = vae_runs

    assert summary.pipeline == "generative_vae"
    assert summary.status == "complete", summary.error
    assert "Evaluator" not in summary.stage_states
    metrics = summary.metrics
    assert metrics["test_elbo"] == pytest.approx(
        -(metrics["test_reconstruction_nll"] + metrics["test_kl"]), abs=1e-3
    )
    assert metrics["test_elbo"] > metrics["gaussian_elbo"]
    assert summary.blessed and summary.pushed, summary.blessing_failures
    assert summary.pushed_path.startswith(config.serving_dir)


def test_the_pushed_vae_samples_digits_from_a_seed(vae_runs):
    _, summary, _ = vae_runs
    loaded = tf.saved_model.load(summary.pushed_path)

    sample = loaded.signatures[generative.SEEDED_SAMPLE_SIGNATURE]
    images = sample(count=tf.constant(5), seed=tf.constant(3))[generative.IMAGES].numpy()
    again = sample(count=tf.constant(5), seed=tf.constant(3))[generative.IMAGES].numpy()

    assert images.shape == (5, 64)
    np.testing.assert_array_equal(images, again)


def test_the_second_run_is_judged_against_the_first_and_reported_with_its_grid(vae_runs):
    config, _, second = vae_runs

    assert second.status == "complete", second.error
    assert second.stage_states["Trainer"] == "cached"  # same inputs: the same model
    collected = report.collect(config.home, second.run_id)
    document = collected.family_evaluation
    # The baseline is the first run's blessed model, the same model: equal figures, blessed.
    assert document["baseline_metrics"]["test_elbo"] == pytest.approx(
        document["metrics"]["test_elbo"]
    )
    assert any("latest blessed model" in check["description"] for check in document["checks"])
    assert second.blessed
    html = report_html.render(collected)
    assert "vae samples" in html and 'src="data:image/png;base64,' in html
    assert "FamilyEvaluator (vae, judged by test elbo)" in html
    assert "test elbo" in html and "gaussian elbo" in html
    grid = os.path.join(os.path.dirname(_evaluation_uri(config, second.run_id)), "vae_samples.png")
    png = tf.io.decode_png(tf.io.read_file(grid))
    assert png.shape[:2] == ((10 * 9 + 1) * 6, (10 * 9 + 1) * 6)  # 100 samples, 10 a row


def _evaluation_uri(config, run_id: str) -> str:
    """The `metrics.json` of the run's FamilyEvaluator."""
    from pipelines import metadata

    store = metadata.open_store(config.metadata_path)
    run = metadata.get_run(store, run_id)
    (stage,) = [stage for stage in run.stages if stage.node_id == "FamilyEvaluator"]
    (evaluation,) = metadata.output_artifacts(store, stage.execution_id)["evaluation"]
    return os.path.join(evaluation.uri, "metrics.json")
