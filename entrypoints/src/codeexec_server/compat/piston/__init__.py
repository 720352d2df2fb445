"""Piston v2's API, served at /piston over codeexec's runtime."""
