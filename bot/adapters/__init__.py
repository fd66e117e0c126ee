"""Adapters: the ports implemented over real infrastructure (SQLite, DynamoDB, compute)."""
