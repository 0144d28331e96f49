"""Figures of the text families on the real data: test accuracy against the majority baseline,
test perplexity of the language models, and a generated sample.

Writes the splits, analyses the text preprocessing_fn on the train split with TFT on Beam,
trains every text family with its default hyper-parameters for a fixed number of epochs and
prints one JSON line per family, then a table.

    .venv/bin/python -m benchmarks.text [--classifier-epochs 6] [--lm-epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft

from models import registry, text_models
from models.data import text
from models.keras_lib import keras
from models.tasks import get_task
from tests import text_fixtures

PROMPT = "The "
SAMPLE_LENGTH = 120


def transformed_splits(workdir: str) -> dict:
    """The real splits as model inputs: {split: (transformed arrays, labels)}."""
    text.write_splits(os.path.join(workdir, "data"), seed=0)
    splits = {
        name: text.read_csv(os.path.join(workdir, "data", name, text.FILE_NAME))
        for name in text.SPLIT_NAMES
    }
    transform_dir = text_fixtures.write_transform_output(
        os.path.join(workdir, "transform"), *splits["train"]
    )
    transform_output = tft.TFTransformOutput(transform_dir)
    return {
        name: (text_fixtures.transform(transform_output, texts), labels)
        for name, (texts, labels) in splits.items()
    }


def measure(family: str, data: dict, epochs: int) -> dict:
    """Trains one family and measures it on the test split."""
    keras.utils.set_random_seed(0)
    card = registry.get_card(family)
    spec = get_task(card.task)
    module = registry.get_family(family)
    model = module.build_model(keras_tuner.HyperParameters(), spec)
    (train, train_labels), (evaluation, eval_labels), (test, test_labels) = (
        data[name] for name in text.SPLIT_NAMES
    )
    language_model = card.metric == "perplexity"

    def xy(features, labels):
        # The model's own input: word or character ids, or the raw passage (bert).
        inputs = features[model.input_names[0]]
        return inputs, features[spec.label_key] if language_model else labels

    started = time.monotonic()
    model.fit(
        *xy(train, train_labels),
        validation_data=xy(evaluation, eval_labels),
        batch_size=32,
        epochs=epochs,
        verbose=0,
    )
    seconds = time.monotonic() - started
    figures = {
        "family": family,
        "metric": card.metric,
        "test": round(float(model.evaluate(*xy(test, test_labels), verbose=0)[1]), 4),
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "parameters": model.count_params(),
    }
    if language_model:
        generate = module.model_signatures(model, spec)[text_models.GENERATE_SIGNATURE]
        for name, temperature in (("greedy", 0.0), ("sampled_t0.8_seed0", 0.8)):
            outputs = generate(
                prompt=tf.constant(PROMPT),
                num_characters=tf.constant(SAMPLE_LENGTH),
                temperature=tf.constant(temperature),
                seed=tf.constant(0, tf.int64),
            )
            figures[name] = PROMPT + outputs[text_models.GENERATED_TEXT].numpy().decode()
    else:
        figures["majority_baseline"] = round(text.majority_baseline(train_labels, test_labels), 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier-epochs", type=int, default=6)
    parser.add_argument("--lm-epochs", type=int, default=4)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        data = transformed_splits(workdir)
        results = []
        for family in registry.family_names("text"):
            metric = registry.get_card(family).metric
            epochs = arguments.lm_epochs if metric == "perplexity" else arguments.classifier_epochs
            results.append(measure(family, data, epochs))
            print(json.dumps(results[-1]), flush=True)
    print(f"{'family':18} {'metric':11} {'test':>8} {'baseline':>8} {'seconds':>8} {'params':>9}")
    for row in results:
        baseline = row.get("majority_baseline", "")
        print(
            f"{row['family']:18} {row['metric']:11} {row['test']:8} {baseline:>8} "
            f"{row['train_seconds']:8} {row['parameters']:9}"
        )


if __name__ == "__main__":
    main()
