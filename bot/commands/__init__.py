"""The commands shared by `/train …` in Slack, its buttons and forms, and the `trainbot` CLI.

A command is one small frozen class per verb (:mod:`bot.commands.verbs`; :data:`Command` is
their union); :func:`parse` reads one from the words after `/train` (:mod:`bot.commands.grammar`);
:func:`bot.dispatch.execute` runs it. Light on purpose: Slack's ack path imports this package.
"""

from __future__ import annotations

from bot.commands.grammar import (
    COMMANDS,
    USAGE,
    parse,
    parse_duration,
    unescape_slack,
)
from bot.commands.verbs import (
    Algorithms,
    Approve,
    Command,
    Diff,
    Eval,
    Help,
    Lineage,
    Logs,
    ModelApprove,
    ModelRegister,
    ModelReject,
    Models,
    Pools,
    PresetDelete,
    PresetList,
    PresetSave,
    PresetShow,
    Reject,
    Rerun,
    Show,
    Start,
    StartForm,
    StatusQuery,
    Stop,
    Sweep,
    Tb,
    Versions,
)

__all__ = [
    "COMMANDS",
    "USAGE",
    "Algorithms",
    "Approve",
    "Command",
    "Diff",
    "Eval",
    "Help",
    "Lineage",
    "Logs",
    "ModelApprove",
    "ModelRegister",
    "ModelReject",
    "Models",
    "Pools",
    "PresetDelete",
    "PresetList",
    "PresetSave",
    "PresetShow",
    "Reject",
    "Rerun",
    "Show",
    "Start",
    "StartForm",
    "StatusQuery",
    "Stop",
    "Sweep",
    "Tb",
    "Versions",
    "parse",
    "parse_duration",
    "unescape_slack",
]
