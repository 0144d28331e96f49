"""Validates each split with a Great Expectations suite and writes the results and Data Docs.

A failed Great Expectations checkpoint does not raise: `success` is False. `validate_splits`
turns every failed expectation into a `Finding` that names the split, the feature and the
reason in plain words; the component fails the run when there is any.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence

import pandas as pd

from components import storage
from components.anomaly_gate.executor import (
    DataValidationError,
    Finding,
    describe,
    findings_markdown,
    markdown_table,
)

RESULTS_FILE = "results.json"
REPORT_FILE = "report.json"
DOCS_DIR = "data_docs"
TABLE = "<dataset>"
ROW_COUNT = "expect_table_row_count_to_be_between"


def read_examples(split_dir: str) -> pd.DataFrame:
    """The tf.Examples of one split (ExampleGen's gzipped TFRecord files) as a data frame.

    A feature with one value becomes that value, a feature without values None, and one with
    several values a tuple of them, so the suite sees (and reports) exactly what is there.

    Raises:
        FileNotFoundError: If the folder holds no files.
    """
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(storage.join(split_dir, "*")))
    if not files:
        raise FileNotFoundError(f"Expected TFRecord files in {split_dir}, found none.")
    records = []
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        example = tf.train.Example.FromString(serialized)
        records.append(
            {name: _value(feature) for name, feature in example.features.feature.items()}
        )
    return pd.DataFrame.from_records(records)


def _value(feature):
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if kind == "bytes_list":
        values = [value.decode("utf-8", "replace") for value in values]
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _context(docs_dir: str | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX logs each metric it computes at INFO and draws tqdm bars: a run needs neither.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    if docs_dir:
        context.add_data_docs_site(
            site_name="local",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": docs_dir,
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _suite(context, suite_document: Mapping):
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = [
        ExpectationConfiguration(
            type=item["type"], kwargs=item["kwargs"], meta=item.get("meta") or {}
        ).to_domain_obj()
        for item in suite_document["expectations"]
    ]
    return context.suites.add(
        gx.ExpectationSuite(name=suite_document["name"], expectations=expectations)
    )


def _columns(suite_document: Mapping) -> list[str]:
    for item in suite_document["expectations"]:
        if item["type"] == "expect_table_columns_to_match_set":
            return list(item["kwargs"]["column_set"])
    return []


def validate_splits(
    frames: Mapping[str, pd.DataFrame],
    suite_document: Mapping,
    output_dir: str | None = None,
    *,
    data_docs: bool = True,
) -> tuple[list[Finding], dict]:
    """Runs the suite on each split through a GX checkpoint.

    Args:
        frames: Split name -> the split's rows.
        suite_document: The suite, as `suite.build_suite` returns it.
        output_dir: When given (a folder or a URI), receives `results.json` (each split's
            validation result) and `data_docs/` (GX Data Docs, `index.html` first).
        data_docs: Whether to render the Data Docs into `output_dir`.

    Returns:
        The failed expectations as findings, in split order, and the results by split.
    """
    if not (output_dir and data_docs):
        return _validate(frames, suite_document, output_dir, None)
    # GX renders Data Docs into a local folder only: render there, then copy to the output.
    with tempfile.TemporaryDirectory(prefix="dlforge-data-docs-") as docs_dir:
        outcome = _validate(frames, suite_document, output_dir, docs_dir)
        storage.upload_tree(docs_dir, storage.join(output_dir, DOCS_DIR))
    return outcome


def _validate(
    frames: Mapping[str, pd.DataFrame],
    suite_document: Mapping,
    output_dir: str | None,
    docs_dir: str | None,
) -> tuple[list[Finding], dict]:
    import great_expectations as gx

    context = _context(docs_dir)
    suite = _suite(context, suite_document)
    source = context.data_sources.add_pandas("examples")
    columns = _columns(suite_document)
    findings: list[Finding] = []
    results: dict[str, dict] = {}
    for split in sorted(frames):
        frame = frames[split]
        if frame.empty and not len(frame.columns):
            # A split without rows still has the expected columns, so that the suite reports
            # the row count rather than every column as missing.
            frame = pd.DataFrame({column: pd.Series(dtype="int64") for column in columns})
        batch = source.add_dataframe_asset(split).add_batch_definition_whole_dataframe(split)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=split, data=batch, suite=suite)
        )
        # The checkpoint stores its result; Data Docs are built once, after every split.
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"examples-{split}",
                validation_definitions=[definition],
                result_format="SUMMARY",
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        (result,) = outcome.run_results.values()
        document = result.to_json_dict()
        results[split] = document
        found = split_findings(split, document, frame.columns, len(frame))
        if not outcome.success and not found:
            # Never pass a failed checkpoint, even one whose failures were not itemised.
            found = [Finding(split, TABLE, "checkpoint failed", "see results.json")]
        findings.extend(found)
    if docs_dir:
        context.build_data_docs(site_names=["local"])
    if output_dir:
        storage.write_json(storage.join(output_dir, RESULTS_FILE), results)
    return findings, results


def split_findings(
    split: str, result: Mapping, columns: Sequence[str] | None = None, rows: int | None = None
) -> list[Finding]:
    """The failed expectations of one split's validation result, in plain words.

    Args:
        split: The split's name.
        result: Its GX validation result as JSON.
        columns: The split's columns, when known: an expectation on a column that is not
            there is not reported, because the column-set expectation already names it.
        rows: The split's row count, when known: of an empty split only the row count is
            reported.
    """
    findings = []
    for item in result["results"]:
        if item["success"]:
            continue
        config = item["expectation_config"]
        kwargs = config["kwargs"]
        needed = kwargs.get("column_list") or ([kwargs["column"]] if "column" in kwargs else [])
        if columns is not None and not set(needed) <= set(columns):
            continue
        if rows == 0 and config["type"] != ROW_COUNT:
            continue
        feature = kwargs.get("column", TABLE)
        check, description = explain(config["type"], kwargs, item)
        findings.append(Finding(split, feature, check, description))
    return findings


def _number(value) -> str:
    """GX hands bounds back as floats: 16.0 reads better as 16."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _examples(values: Sequence) -> str:
    distinct = list(dict.fromkeys(repr(value) for value in values))
    shown = ", ".join(distinct[:3])
    return f", e.g. {shown}" if shown else ""


def explain(kind: str, kwargs: Mapping, item: Mapping) -> tuple[str, str]:
    """A failed expectation as (check, what was expected and what was found)."""
    result = item.get("result") or {}
    exception = (item.get("exception_info") or {}).get("exception_message")
    if exception:
        return "could not be checked", f"{kind} raised: {exception.splitlines()[0]}"
    count = result.get("unexpected_count", 0)
    examples = _examples(result.get("partial_unexpected_list") or [])
    observed = result.get("observed_value")
    if kind == "expect_column_values_to_be_between":
        return (
            "values out of range",
            f"{count} value(s) outside {_number(kwargs['min_value'])}.."
            f"{_number(kwargs['max_value'])}{examples}",
        )
    if kind == "expect_column_values_to_be_in_set":
        values = kwargs["value_set"]
        return (
            "values outside the vocabulary",
            f"{count} value(s) not in {values[0]}..{values[-1]}{examples}",
        )
    if kind == "expect_column_values_to_not_be_null":
        return "missing values", f"{count} empty value(s); every row needs one"
    if kind == "expect_column_values_to_be_in_type_list":
        return "wrong type", f"values of type {observed}, expected one of {kwargs['type_list']}"
    if kind == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = []
        if mismatched.get("missing"):
            parts.append(f"missing column(s) {', '.join(sorted(mismatched['missing']))}")
        if mismatched.get("unexpected"):
            parts.append(f"unexpected column(s) {', '.join(sorted(mismatched['unexpected']))}")
        return "wrong columns", "; ".join(parts) or f"columns {observed}"
    if kind == ROW_COUNT:
        return (
            "row count out of bounds",
            f"{observed} rows, expected {_number(kwargs['min_value'])}.."
            f"{_number(kwargs['max_value'])}",
        )
    if kind == "expect_compound_columns_to_be_unique":
        allowed = 100 * (1 - kwargs["mostly"])
        return (
            "duplicated rows",
            f"{result.get('unexpected_percent', 0):.1f}% of rows repeat another row exactly, "
            f"at most {allowed:.0f}% allowed",
        )
    if kind == "expect_column_kl_divergence_to_be_less_than":
        if observed is None:
            values = kwargs["partition_object"]["values"]
            return (
                "degenerate distribution",
                f"not measurable: the column holds values outside {values[0]}..{values[-1]}",
            )
        weights = ((result.get("details") or {}).get("observed_partition") or {}).get("weights")
        share = f"; the most common value holds {max(weights):.0%} of rows" if weights else ""
        return (
            "degenerate distribution",
            f"Kullback-Leibler divergence from uniform {observed:.3f}, expected below "
            f"{kwargs['threshold']}{share}",
        )
    return kind, f"observed {observed}"


def summary_markdown(
    findings: Sequence[Finding], results: Mapping[str, Mapping], rows: Mapping[str, int]
) -> str:
    """The validation as Markdown: per split its rows and expectations met, then the findings.

    Args:
        findings: As `validate_splits` returns them.
        results: Each split's GX validation result as JSON.
        rows: Each split's row count.
    """
    per_split = []
    for split in sorted(results):
        outcomes = [item["success"] for item in results[split]["results"]]
        per_split.append((split, rows.get(split, ""), f"{sum(outcomes)} of {len(outcomes)}"))
    return (
        findings_markdown(
            "Great Expectations suite",
            not findings,
            findings,
            "The data docs are in the report artifact, under `data_docs/index.html`.",
        )
        + "\n"
        + markdown_table(("split", "rows", "expectations met"), per_split)
    )


def run_validator(
    split_dirs: Mapping[str, str],
    suite_document: Mapping,
    output_dir: str,
    summary_path: str | None = None,
) -> None:
    """The component's work: validates each split's examples, writes the results, Data Docs
    and `report.json` under `output_dir` (and the Markdown summary to `summary_path`), then
    fails when an expectation failed.

    Raises:
        DataValidationError: If any expectation failed; the message names split, feature and
            reason.
    """
    frames = {split: read_examples(path) for split, path in split_dirs.items()}
    findings, results = validate_splits(frames, suite_document, output_dir)
    rows = {split: len(frame) for split, frame in frames.items()}
    storage.write_json(
        storage.join(output_dir, REPORT_FILE),
        {
            "passed": not findings,
            "rows": rows,
            "findings": [finding.__dict__ for finding in findings],
        },
    )
    if summary_path:
        storage.write_text(summary_path, summary_markdown(findings, results, rows))
    if findings:
        raise DataValidationError(
            f"Great Expectations: {len(findings)} expectation(s) failed; the run stops before "
            f"training. Data Docs: {storage.join(output_dir, DOCS_DIR, 'index.html')}\n"
            f"{describe(findings)}"
        )
