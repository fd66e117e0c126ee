"""CSV channels as columns, and the encoding that turns columns into a feature matrix.

No pandas (the training image may not have it): the csv module and numpy. Every CSV file in
a channel must start with a header row naming its columns, the same set in every file.
Numeric columns stay numbers (empty, NA, NaN, null, None and ? mean missing); any other
column is categorical, its values coded by their sorted order in the training data.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sm_contract import UserError, channel_dir, data_files

__all__ = [
    "Encoding",
    "Table",
    "builtin_table",
    "fit_encoding",
    "is_missing",
    "load_channels",
    "read_csv_channel",
    "sorted_labels",
]

MISSING = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})
# HistGradientBoosting bins a categorical feature into at most max_bins (255) categories.
MAX_CATEGORIES = 255


@dataclass(frozen=True)
class Table:
    """Named columns: string arrays from CSV files, float arrays from built-in datasets."""

    names: list[str]
    columns: list[np.ndarray]
    source: str

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def column(self, name: str) -> np.ndarray:
        return self.columns[self.names.index(name)]

    def take(self, rows: np.ndarray) -> Table:
        return Table(self.names, [column[rows] for column in self.columns], self.source)


def builtin_table(loader: str, *, class_names: bool) -> Table:
    """A scikit-learn bundled dataset (no download) with its label in column `target`;
    classifiers get the class names (`malignant`, `benign`) as label values."""
    from sklearn import datasets

    bunch = getattr(datasets, loader)()
    target = bunch.target
    if class_names:
        target = np.asarray(bunch.target_names)[target]
    columns = [bunch.data[:, i].astype(np.float64) for i in range(bunch.data.shape[1])]
    return Table(
        [str(name) for name in bunch.feature_names] + ["target"],
        [*columns, np.asarray(target)],
        f"builtin:sklearn.datasets.{loader}",
    )


def load_channels(builtin: str, *, class_names: bool) -> tuple[Table, Table | None]:
    """The `train` channel (or the built-in dataset when it is absent or empty) and the
    optional `validation` channel."""
    train_dir = channel_dir("train")
    validation_dir = channel_dir("validation")
    if train_dir is None and validation_dir is not None:
        raise UserError("a validation channel needs a train channel too")
    train = (
        read_csv_channel("train", train_dir)
        if train_dir
        else builtin_table(builtin, class_names=class_names)
    )
    validation = read_csv_channel("validation", validation_dir) if validation_dir else None
    return train, validation


def sorted_labels(labels: Sequence[str]) -> list[str]:
    """Distinct labels, in numeric order when they are all numbers."""
    distinct = sorted(set(labels))
    if all(_is_number(label) for label in distinct):
        return sorted(distinct, key=float)
    return distinct


def read_csv_channel(channel: str, root: Path) -> Table:
    files = data_files(root, [".csv"])
    if not files:
        raise UserError(f"channel {channel}: no .csv files in {root}")
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in files:
        file_header, file_rows = _read_csv(channel, path)
        if header is None:
            header = file_header
        elif set(file_header) != set(header):
            raise UserError(
                f"channel {channel}: {path.name} has columns {file_header}, "
                f"but {files[0].name} has {header}"
            )
        order = [file_header.index(name) for name in header]
        rows.extend([row[i] for i in order] for row in file_rows)
    assert header is not None
    if not rows:
        raise UserError(f"channel {channel}: the CSV files in {root} hold no data rows")
    matrix = np.array(rows, dtype=str)
    return Table(header, [matrix[:, i] for i in range(len(header))], f"{root} (csv)")


def _read_csv(channel: str, path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            lines = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"channel {channel}: cannot read {path.name}: {exc}") from exc
    if not lines:
        raise UserError(f"channel {channel}: {path.name} is empty")
    header = [name.strip() for name in lines[0]]
    if all(_is_number(name) for name in header):
        raise UserError(
            f"channel {channel}: the first row of {path.name} looks like data; CSV files need "
            "a header row naming the columns"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates or "" in header:
        raise UserError(
            f"channel {channel}: {path.name} has empty or repeated column names {duplicates}"
        )
    for number, row in enumerate(lines[1:], start=2):
        if len(row) != len(header):
            raise UserError(
                f"channel {channel}: {path.name} row {number} has {len(row)} fields, "
                f"the header has {len(header)}"
            )
    return header, [[cell.strip() for cell in row] for row in lines[1:]]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_missing(values: np.ndarray) -> np.ndarray:
    """Which entries of a string or float column are missing."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    return np.isin(np.char.lower(values.astype(str)), list(MISSING))


@dataclass(frozen=True)
class Encoding:
    """How training columns became features; applied unchanged to validation data and
    stored in model.json so predictions can encode rows the same way."""

    label_column: str
    features: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def categorical_mask(self) -> np.ndarray | None:
        if not self.categories:
            return None
        return np.array([name in self.categories for name in self.features])

    def transform(self, table: Table, where: str) -> np.ndarray:
        missing = [name for name in self.features if name not in table.names]
        if missing:
            raise UserError(f"{where} data lacks feature columns {missing[:5]}")
        matrix = np.empty((len(table), len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            values = table.column(name)
            if name in self.categories:
                matrix[:, j] = _codes(values, self.categories[name])
            else:
                matrix[:, j] = _numbers(values, name, where)
        return matrix

    def to_json(self) -> dict[str, Any]:
        return {
            "label_column": self.label_column,
            "features": self.features,
            "categorical": self.categories,
            "missing_values": sorted(MISSING),
        }


def fit_encoding(table: Table, label_column: str, ignore: Sequence[str]) -> Encoding:
    """Choose the feature columns and find which are categorical."""
    if label_column not in table.names:
        shown = ", ".join(table.names[:12])
        more = f" and {len(table.names) - 12} more" if len(table.names) > 12 else ""
        raise UserError(
            f"label_column {label_column!r} is not a column of {table.source}; "
            f"its columns are {shown}{more}"
        )
    unknown = sorted(set(ignore) - set(table.names))
    if unknown:
        raise UserError(f"ignore_columns names columns that do not exist: {unknown}")
    features = [name for name in table.names if name != label_column and name not in ignore]
    if not features:
        raise UserError("no feature columns left besides the label")
    categories = {}
    for name in features:
        values = table.column(name)
        if values.dtype.kind == "f" or all(_is_number(v) for v in values[~is_missing(values)]):
            continue
        found = sorted(set(values[~is_missing(values)].tolist()))
        if len(found) > MAX_CATEGORIES:
            raise UserError(
                f"column {name!r} has {len(found)} distinct text values (at most "
                f"{MAX_CATEGORIES} categories are supported); add it to ignore_columns"
            )
        categories[name] = found
    return Encoding(label_column, features, categories)


def _codes(values: np.ndarray, categories: list[str]) -> np.ndarray:
    index = {value: float(code) for code, value in enumerate(categories)}
    # Unseen or missing categories become NaN, which the booster treats as missing.
    return np.array([index.get(value, math.nan) for value in values.astype(str)])


def _numbers(values: np.ndarray, name: str, where: str) -> np.ndarray:
    if values.dtype.kind == "f":
        numbers = values.astype(np.float64)
    else:
        numbers = np.full(len(values), math.nan)
        present = ~is_missing(values)
        for row in np.flatnonzero(present):
            try:
                numbers[row] = float(values[row])
            except ValueError:
                raise UserError(
                    f"{where} column {name!r} is numeric in training data, but its row "
                    f"{row + 1} holds {values[row]!r}"
                ) from None
    if np.isinf(numbers).any():
        raise UserError(f"{where} column {name!r} holds infinite values")
    return numbers
