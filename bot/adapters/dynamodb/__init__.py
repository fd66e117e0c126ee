"""The production :class:`~bot.ports.JobStore`: one DynamoDB table, conditional writes only.

- :mod:`.keys` is the key design: every partition and sort key, and the attribute values
  they are made of;
- :mod:`.items` turns models into items and back (index attributes included);
- :mod:`.writes` builds the conditional Put/Update requests (pure, no I/O);
- :mod:`.transactions` reads why a transaction was cancelled and retries the retryable;
- :mod:`.reads` is every read: consistent GetItem, Query of a partition or an index;
- :mod:`.model_versions` registers and decides models (the store delegates to it);
- :mod:`.sweeps` creates and saves sweeps;
- :mod:`.version_writes` writes versions with what they hold: pool and cap places, the
  charge to the ledger (taken by the launch's claim, given back by the version's end);
- :mod:`.spend` is caps' counters, the ledger, budgets and notices;
- :mod:`.store` is the port (:class:`~.store.DynamoStore`).

The tables themselves (key schema, indexes) are defined in :mod:`bot.adapters.dynamodb_schema`.
"""
