"""A Great Expectations suite derived from a curated TFDV schema plus domain rules.

The suite is data: `build_suite` returns the JSON document that is stored in the repository and
handed to the GxValidator component; it holds no ids or timestamps, so it only changes when the
schema or the rules do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tensorflow_metadata.proto.v0 import schema_pb2

# pandas dtypes that hold a whole-number column without nulls.
INTEGER_TYPES = ("int64", "int32", "int16", "int8")
# pandas dtypes of a column of real numbers (a whole-number column is one too).
FLOAT_TYPES = ("float64", "float32", *INTEGER_TYPES)
# Python type of each value of a column of strings (GX checks an object column value by value).
STRING_TYPES = ("str",)


@dataclass(frozen=True)
class SuiteRules:
    """Domain rules a schema cannot state.

    Attributes:
        min_rows: Fewest rows a split may have; below it the statistics that drift and skew are
            measured on are too noisy to trust.
        max_rows: Most rows a split may have (the suite is evaluated in memory).
        max_duplicate_fraction: Largest share of rows that may repeat another row exactly.
        label: The label feature.
        max_label_divergence: Largest Kullback-Leibler divergence (nats) of the label
            distribution from the uniform one over the label's values; a data set whose classes
            collapse onto a few labels exceeds it. None for a label that is not a balanced
            categorical one (a regression target).
    """

    min_rows: int
    max_rows: int
    max_duplicate_fraction: float
    label: str
    max_label_divergence: float | None

    def __post_init__(self) -> None:
        if not 0 < self.min_rows <= self.max_rows:
            raise ValueError(
                "Expected 0 < min_rows <= max_rows, received "
                f"min_rows={self.min_rows}, max_rows={self.max_rows}."
            )
        if not 0 <= self.max_duplicate_fraction < 1:
            raise ValueError(
                "Expected max_duplicate_fraction in [0, 1), received "
                f"{self.max_duplicate_fraction}."
            )
        if self.max_label_divergence is not None and not 0 < self.max_label_divergence < math.inf:
            raise ValueError(
                f"Expected a positive max_label_divergence, received {self.max_label_divergence}."
            )


def _expectation(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {}}


def _feature_expectations(feature: schema_pb2.Feature) -> list[dict]:
    """No nulls (when presence is required), the dtype, and the domain of an INT or FLOAT
    feature with a domain, or of a BYTES (string) feature, which has no domain to check."""
    kinds = {
        schema_pb2.INT: ("int_domain", INTEGER_TYPES),
        schema_pb2.FLOAT: ("float_domain", FLOAT_TYPES),
        schema_pb2.BYTES: ("", STRING_TYPES),
    }
    domain_field, types = kinds.get(feature.type, (None, ()))
    if domain_field is None or (domain_field and not feature.HasField(domain_field)):
        raise ValueError(
            "Expected integer or float features with a domain, or string features, in the "
            f"schema, received feature {feature.name!r} of type "
            f"{schema_pb2.FeatureType.Name(feature.type)}"
            f"{'' if domain_field is None else ' without a domain'}."
        )
    expectations = []
    if feature.presence.min_fraction >= 1.0:
        expectations.append(
            _expectation("expect_column_values_to_not_be_null", column=feature.name)
        )
    expectations.append(
        _expectation(
            "expect_column_values_to_be_in_type_list", column=feature.name, type_list=list(types)
        )
    )
    if not domain_field:
        return expectations
    domain = getattr(feature, domain_field)
    if feature.type == schema_pb2.INT and domain.is_categorical:
        expectations.append(
            _expectation(
                "expect_column_values_to_be_in_set",
                column=feature.name,
                value_set=list(range(domain.min, domain.max + 1)),
            )
        )
    else:
        expectations.append(
            _expectation(
                "expect_column_values_to_be_between",
                column=feature.name,
                min_value=domain.min,
                max_value=domain.max,
            )
        )
    return expectations


def build_suite(schema: schema_pb2.Schema, rules: SuiteRules, name: str) -> dict:
    """The expectation suite for data of `schema`, as a JSON document.

    From the schema: exactly the schema's columns; per feature, no nulls (when its presence is
    required), its dtype, and the domain of a number (a range, or the set of values of a
    categorical integer). From the rules: the rows per split, the share of duplicated rows, and
    (when the rules bound it) the label distribution's divergence from uniform.

    Args:
        schema: The curated TFDV schema.
        rules: The domain rules.
        name: The suite's name.

    Returns:
        `{"name": ..., "expectations": [{"type", "kwargs", "meta"}, ...]}`.

    Raises:
        ValueError: If a feature is not a number with a domain or a string, or the label is
            not a feature of the schema, or not a categorical one when its divergence is bound.
    """
    features = {feature.name: feature for feature in schema.feature}
    label = features.get(rules.label)
    categorical = label is not None and label.int_domain.is_categorical
    if label is None or (rules.max_label_divergence is not None and not categorical):
        raise ValueError(
            f"Expected the label {rules.label!r} to be a "
            f"{'categorical integer ' if rules.max_label_divergence is not None else ''}"
            f"feature of the schema, found {'none' if label is None else 'a non-categorical one'}."
        )
    columns = [feature.name for feature in schema.feature]
    expectations = [
        _expectation("expect_table_columns_to_match_set", column_set=columns, exact_match=True),
        _expectation(
            "expect_table_row_count_to_be_between",
            min_value=rules.min_rows,
            max_value=rules.max_rows,
        ),
        _expectation(
            "expect_compound_columns_to_be_unique",
            column_list=columns,
            mostly=round(1.0 - rules.max_duplicate_fraction, 6),
        ),
    ]
    for feature in schema.feature:
        expectations.extend(_feature_expectations(feature))
    if rules.max_label_divergence is None:
        return {"name": name, "expectations": expectations}
    values = list(range(label.int_domain.min, label.int_domain.max + 1))
    expectations.append(
        _expectation(
            "expect_column_kl_divergence_to_be_less_than",
            column=rules.label,
            partition_object={"values": values, "weights": [1.0 / len(values)] * len(values)},
            threshold=rules.max_label_divergence,
        )
    )
    return {"name": name, "expectations": expectations}
