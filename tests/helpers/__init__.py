"""Shared test support: databases, factories for tenants and keys, live servers."""
