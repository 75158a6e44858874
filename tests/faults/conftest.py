"""The fault suite: real `vibexp serve` processes on the suite's databases (SQLite and PostgreSQL).

Every fault here is caused for real (concurrent writers, a stopped PostgreSQL, ``kill -9``); each test starts the
processes and databases it breaks and stops or removes them itself. ``db_factory``, ``two_servers`` and
``start_servers`` come from tests/helpers/fixtures.py.
"""
