"""The embedded :class:`~bot.ports.JobStore`: one SQLite file in WAL mode.

- :mod:`.migrations` is the schema, as the upgrades that build it;
- :mod:`.rows` turns models into rows and back;
- :mod:`.algorithms` keeps registered algorithms (immutable versions, a pointer per id);
- :mod:`.model_versions` keeps registered models (numbered per group, decided once);
- :mod:`.sweeps` keeps sweeps; :mod:`.spend` caps' places, the ledger, budgets, notices;
- :mod:`.store` is the port (:class:`~.store.SqliteStore`): connections, transactions.
"""

from bot.adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
