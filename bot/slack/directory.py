"""User-group membership through the Web API (``usergroups.users.list``), cached briefly."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["Directory"]

log = logging.getLogger("trainbot.slack")


class Directory:
    def __init__(self, client: Any, *, ttl_s: float = 300.0) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(group)
            if hit and now - hit[0] < self.ttl_s:
                return hit[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group)["users"])
        except Exception:
            # Failing closed: an unreachable directory grants nothing.
            log.exception("could not list members of user group %s", group)
            return hit[1] if hit else frozenset()
        with self._lock:
            self._cache[group] = (now, users)
        return users

    def is_member(self, user: str, group: str) -> bool:
        return user in self.members(group)

    def expand(self, ids: list[str]) -> list[str]:
        """User ids, with user groups (``S…``) replaced by their members; order kept."""
        out: list[str] = []
        for i in ids:
            out.extend(sorted(self.members(i)) if i.startswith("S") else [i])
        return list(dict.fromkeys(out))
