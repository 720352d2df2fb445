"""Ports: the interfaces the domain services need from the outside world."""
