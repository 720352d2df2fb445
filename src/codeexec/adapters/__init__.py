"""Embedded adapters: the in-memory bus and the scripted fake sandbox (stdlib only)."""
