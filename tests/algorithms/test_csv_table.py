"""csv_table: CSV channels become a feature matrix without pandas."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.algorithms.conftest import import_modules

csv_table, contract = import_modules("tabular-classification", "csv_table", "sm_contract")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.parent


def test_numeric_categorical_and_missing_values(tmp_path: Path) -> None:
    root = write(tmp_path / "a.csv", "size,colour,label\n1.5,red,yes\nNA,blue,no\n3,,yes\n")
    table = csv_table.read_csv_channel("train", root)
    encoding = csv_table.fit_encoding(table, "label", [])
    x = encoding.transform(table, "training")
    assert encoding.features == ["size", "colour"]
    assert encoding.categories == {"colour": ["blue", "red"]}
    assert encoding.categorical_mask.tolist() == [False, True]
    assert x[0].tolist() == [1.5, 1.0]
    assert math.isnan(x[1, 0]) and x[1, 1] == 0.0
    assert math.isnan(x[2, 1])


def test_files_of_a_channel_are_joined_by_column_name(tmp_path: Path) -> None:
    write(tmp_path / "part-1.csv", "a,b\n1,2\n")  # files are read in path order
    write(tmp_path / "sub" / "part-2.csv", "b,a\n4,3\n")
    table = csv_table.read_csv_channel("train", tmp_path)
    assert table.column("a").tolist() == ["1", "3"]
    assert table.column("b").tolist() == ["2", "4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3\n4,5,6\n", "looks like data"),
        ("a,a,b\n1,2,3\n", "repeated column names"),
        ("a,b\n1,2\n3\n", "row 3 has 1 fields"),
        ("a,b\n", "no data rows"),
    ],
)
def test_malformed_csv_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    root = write(tmp_path / "bad.csv", text)
    with pytest.raises(contract.UserError, match=message):
        csv_table.read_csv_channel("train", root)


def test_unknown_label_column_lists_the_columns(tmp_path: Path) -> None:
    table = csv_table.read_csv_channel("train", write(tmp_path / "a.csv", "x,y\n1,2\n"))
    with pytest.raises(
        contract.UserError, match=r"label_column 'label' is not a column.*columns are x, y"
    ):
        csv_table.fit_encoding(table, "label", [])


def test_ignored_columns_are_not_features(tmp_path: Path) -> None:
    table = csv_table.read_csv_channel("train", write(tmp_path / "a.csv", "id,x,y\nq,1,2\n"))
    assert csv_table.fit_encoding(table, "y", ["id"]).features == ["x"]


def test_unseen_categories_become_missing(tmp_path: Path) -> None:
    train = csv_table.read_csv_channel("t", write(tmp_path / "t" / "a.csv", "c,y\nred,1\n"))
    other = csv_table.read_csv_channel("v", write(tmp_path / "v" / "a.csv", "c,y\ngreen,1\n"))
    encoding = csv_table.fit_encoding(train, "y", [])
    assert np.isnan(encoding.transform(other, "validation")).all()


def test_text_in_a_numeric_validation_column_is_an_error(tmp_path: Path) -> None:
    train = csv_table.read_csv_channel("t", write(tmp_path / "t" / "a.csv", "n,y\n1,1\n"))
    other = csv_table.read_csv_channel("v", write(tmp_path / "v" / "a.csv", "n,y\nabc,1\n"))
    encoding = csv_table.fit_encoding(train, "y", [])
    with pytest.raises(contract.UserError, match="numeric in training data"):
        encoding.transform(other, "validation")


def test_numeric_labels_sort_as_numbers() -> None:
    assert csv_table.sorted_labels(["10", "9", "1"]) == ["1", "9", "10"]
    assert csv_table.sorted_labels(["b", "a", "b"]) == ["a", "b"]
