from __future__ import annotations

from bot.slack import forms
from tests.unit.conftest import ALGO


def test_form_has_one_typed_input_per_hyperparameter() -> None:
    view = forms.hyperparameter_view(ALGO, {"epochs": 7}, {}, callback_id="start_form",
                                     title="Start", pools=["local-cpu", "gpu-1"], pool="gpu-1")
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id["hp:epochs"]["element"]["type"] == "number_input"
    assert by_id["hp:epochs"]["element"]["initial_value"] == "7"
    assert by_id["hp:lr"]["element"]["is_decimal_allowed"] is True
    assert by_id["hp:optimizer"]["element"]["type"] == "static_select"
    assert by_id["hp:amp"]["element"]["initial_option"]["value"] == "true"
    assert by_id["pool"]["element"]["initial_option"]["value"] == "gpu-1"
    assert "[1, 100]" in by_id["hp:epochs"]["hint"]["text"]


def test_invalid_values_become_inline_errors() -> None:
    view = {"state": {"values": {"hp:epochs": {"value": {"value": "1000"}},
                                 "hp:lr": {"value": {"value": "0.5"}}}}}
    params, errors = forms.validate_form(ALGO, forms.read_values(view))
    assert params == {"lr": "0.5"}
    assert "epochs" in errors["hp:epochs"]


def test_read_values_handles_selects() -> None:
    view = {"state": {"values": {"pool": {"value": {"selected_option": {"value": "gpu-1"}}},
                                 "name": {"value": {"value": None}}}}}
    assert forms.read_values(view) == {"pool": "gpu-1"}
