"""Tests that run real `vibexp serve` processes and the CLI against a shared database; ``db_factory`` and
``two_servers`` come from tests/helpers/fixtures.py."""
