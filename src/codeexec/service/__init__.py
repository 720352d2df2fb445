"""Application services: the store, the relay, and one process per role."""
