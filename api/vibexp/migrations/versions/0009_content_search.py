"""content search: (tenant_id, id) indexes for every list, ranked full-text search (SQLite FTS5, PostgreSQL tsvector)

Revision ID: 0009_content_search
Revises: 0008_memory_project
Create Date: 2026-12-02 13:45:00

The single-column ``ix_<table>_tenant_id`` indexes go: PostgreSQL's planner picked them for a tenant's list page and
then sorted all of the tenant's rows by id; ``(tenant_id, id)`` serves the filter, the order and the ``LIMIT`` at once
(and the ``ON DELETE CASCADE`` from tenants). Artifacts also get ``(tenant_id, project, id)`` for ``?project=``. On
PostgreSQL a GIN index on ``tags::jsonb`` serves ``?tag=``.

Search (queried by ``vibexp.core.content.search``; the searchable columns below must match its ``SEARCHABLE``):

* SQLite: an FTS5 external-content table ``<table>_fts`` (``tokenize='porter unicode61'``) keyed by the content
  table's rowid, kept in step by insert/update/delete triggers and filled from the existing rows here. The text is not
  stored twice. A later migration that *recreates* one of these tables (Alembic batch mode on SQLite) drops the
  triggers and renumbers rowids: it must call ``create_sqlite_search`` again (it rebuilds the index).
* PostgreSQL: a ``search_vector`` column ``GENERATED ALWAYS AS (...) STORED`` (``to_tsvector('english', ...)``, the
  name/title weighted A, slug/description B, content C) with a GIN index; adding it computes it for existing rows.
  Content is indexed up to its first 100,000 characters: a tsvector is capped at 1 MB, and a 1 MB artifact of
  distinct words would otherwise make its insert fail.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_content_search"
down_revision: str | None = "0008_memory_project"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Searchable columns per table with their weight (A highest), as in vibexp.core.content.search.SEARCHABLE. Frozen
#: here on purpose: a migration must keep doing what it did when it was written.
SEARCHABLE: dict[str, tuple[tuple[str, str], ...]] = {
    "prompts": (("name", "A"), ("description", "B"), ("content", "C")),
    "artifacts": (("title", "A"), ("slug", "B"), ("description", "B"), ("content", "C")),
    "memories": (("content", "C"),),
}
#: PostgreSQL indexes this many leading characters of a column (see the module docstring).
PG_INDEXED_CHARS = 100_000
LIST_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "prompts": (("tenant_id", "id"),),
    "artifacts": (("tenant_id", "id"), ("tenant_id", "project", "id")),
    "memories": (("tenant_id", "id"),),
}


def _index_name(table: str, columns: Sequence[str]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def create_sqlite_search(table: str) -> None:
    """(Re)create ``<table>_fts`` and its triggers, and index every existing row."""
    columns = [name for name, _ in SEARCHABLE[table]]
    fts = f"{table}_fts"
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    drop_sqlite_search(table)
    op.execute(
        f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, content='{table}', content_rowid='rowid', "
        "tokenize='porter unicode61')"
    )
    # External content: FTS5 keeps only the index; each change must remove the old row's terms and add the new ones.
    op.execute(
        f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, {names}) VALUES (new.rowid, {new}); END"
    )
    op.execute(
        f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.rowid, {old}); END"
    )
    op.execute(
        f"CREATE TRIGGER {fts}_au AFTER UPDATE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.rowid, {old}); "
        f"INSERT INTO {fts}(rowid, {names}) VALUES (new.rowid, {new}); END"
    )
    op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def drop_sqlite_search(table: str) -> None:
    fts = f"{table}_fts"
    for suffix in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
    op.execute(f"DROP TABLE IF EXISTS {fts}")


def _tsvector_expression(table: str) -> str:
    parts = [
        f"setweight(to_tsvector('english'::regconfig, left(coalesce({column}, ''), {PG_INDEXED_CHARS})), '{weight}')"
        for column, weight in SEARCHABLE[table]
    ]
    return " || ".join(parts)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, indexes in LIST_INDEXES.items():
        op.drop_index(f"ix_{table}_tenant_id", table_name=table)
        for columns in indexes:
            op.create_index(_index_name(table, columns), table, list(columns))
    for table in SEARCHABLE:
        if sqlite:
            create_sqlite_search(table)
        else:
            # Adding a stored generated column rewrites the table once, computing the vector of every existing row.
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN search_vector tsvector "
                f"GENERATED ALWAYS AS ({_tsvector_expression(table)}) STORED"
            )
            op.execute(f"CREATE INDEX ix_{table}_search_vector ON {table} USING gin (search_vector)")
            # ?tag= is `tags::jsonb @> '["tag"]'` on PostgreSQL: a rare tag is found from this index instead of
            # filtering every row of the tenant (SQLite has no index on JSON array elements; it walks (tenant_id, id)).
            op.execute(f"CREATE INDEX ix_{table}_tags ON {table} USING gin ((tags::jsonb) jsonb_path_ops)")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in SEARCHABLE:
        if sqlite:
            drop_sqlite_search(table)
        else:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_tags")
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search_vector")
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_vector")
    for table, indexes in LIST_INDEXES.items():
        for columns in indexes:
            op.drop_index(_index_name(table, columns), table_name=table)
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
