from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "infra" / "slack-app-manifest.yml"


def test_manifest_asks_only_for_the_scopes_trainbot_uses() -> None:
    m = yaml.safe_load(MANIFEST.read_text())
    assert set(m["oauth_config"]["scopes"]["bot"]) == {
        "commands", "chat:write", "files:write", "files:read", "usergroups:read"}
    assert [c["command"] for c in m["features"]["slash_commands"]] == ["/train"]
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["features"]["slash_commands"][0]["url"].endswith("/slack/events")
