"""Use cases. Plain functions that take :class:`Deps`; no I/O of their own."""
