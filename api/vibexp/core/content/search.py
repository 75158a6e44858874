"""Ranked full-text search behind ``q=`` (REST lists, the dashboard, MCP ``search_memories`` and the list tools).

How a query is read — the same on SQLite and PostgreSQL, and never passed to either as query syntax:

* ``q`` is cut into words: runs of letters and digits (any script). Everything else — spaces, punctuation, quotes,
  ``*``, ``-``, ``_``, parentheses, ``%`` — only separates words. English stop words ("the", "and", "or", "not",
  "only"... PostgreSQL's list, ``STOP_WORDS``) are dropped on both databases. Only the first 32 words left count.
* Operator words are words like any other: ``NEAR``, ``AND``, ``OR``, ``NOT`` are searched for, never obeyed
  (each word reaches the engine quoted: an FTS5 string, a ``websearch_to_tsquery`` phrase).
* An object matches when it contains **every** word, in any word form: the English (Porter) stemmer makes
  "running", "runs" and "run" one word. Case and (on SQLite) accents are ignored.
* A ``q`` with no word left (``"!!!"``, ``"*"``, ``"the"``) matches nothing: an empty page, not an error. An
  empty ``q`` is no search at all (the plain list).
* A ``q`` longer than ``MAX_QUERY_CHARS`` (1,000) characters is refused with ``InvalidInput`` (a 422): no search
  needs it, and silently dropping the rest would search for something other than what was asked.
* Results come best first with a ``score`` (higher is better; only comparable within one result list), ties in id
  order. The page cursor carries (score, id), so paging continues exactly after the last row shown.

Engines: SQLite uses the FTS5 tables ``<table>_fts`` (``porter unicode61``) and ``bm25`` with column weights;
PostgreSQL the generated ``search_vector`` column (``english`` configuration, GIN index) and ``ts_rank``. Both are
created by migration 0009_content_search. Differences that remain: PostgreSQL indexes the first 100,000 characters
of a text and keeps accents; SQLite's bm25 depends on the statistics of the whole table, so a write between two pages
can shift scores (no error; a row may then be shown twice or skipped), while ``ts_rank`` depends only on the row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, String, and_, func, literal, literal_column, or_, table
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from vibexp.core.errors import InvalidInput

__all__ = ["MAX_QUERY_CHARS", "MAX_WORDS", "SEARCHABLE", "STOP_WORDS", "Ranking", "query_words", "ranking"]

MAX_QUERY_CHARS = 1000
MAX_WORDS = 32
#: Searchable columns per table with their weight (A highest), as created by migration 0009_content_search.
SEARCHABLE: dict[str, tuple[tuple[str, str], ...]] = {
    "prompts": (("name", "A"), ("description", "B"), ("content", "C")),
    "artifacts": (("title", "A"), ("slug", "B"), ("description", "B"), ("content", "C")),
    "memories": (("content", "C"),),
}
#: bm25 column weights standing in for PostgreSQL's A-D (whose ts_rank defaults are 1.0, 0.4, 0.2, 0.1).
_BM25_WEIGHTS = {"A": 10.0, "B": 4.0, "C": 2.0, "D": 1.0}
#: PostgreSQL's ``english`` stop words (the Snowball list). Its query parser drops them; dropping them before either
#: engine sees the query makes a query mean the same on SQLite, whose FTS5 index keeps them.
_STOP_WORDS_TEXT = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself
it its itself they them their theirs themselves what which who whom this that these those am is are was were be
been being have has had having do does did doing a an the and but if or because as until while of at by for
with about against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other some such no
nor not only own same so than too very s t can will just don should now
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
#: Letters and digits of any script: ``\w`` without the underscore.
_WORD = re.compile(r"[^\W_]+")


def query_words(q: str) -> list[str]:
    """The words of a search string that are searched for (see the module docstring); may be empty."""
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is too long: at most {MAX_QUERY_CHARS} characters (got {len(q)})")
    return [word for word in _WORD.findall(q) if word.lower() not in STOP_WORDS][:MAX_WORDS]


@dataclass(frozen=True, slots=True)
class Ranking:
    """How to rank one table's rows for one query on one database."""

    #: The relevance of a row, higher is better.
    score: ColumnElement[float]
    _join: tuple[Any, ColumnElement[bool]] | None
    _match: ColumnElement[bool]

    def apply(self, query: Select[Any]) -> Select[Any]:
        """``query`` (a select of the table) restricted to matching rows."""
        if self._join is not None:
            query = query.join(*self._join)
        return query.where(self._match)

    def after(
        self, score: float, last_id: ColumnElement[str] | InstrumentedAttribute[str], last: str
    ) -> ColumnElement[bool]:
        """Rows that come after (``score``, ``last``) in the order (score descending, id)."""
        return or_(self.score < score, and_(self.score == score, last_id > last))


def ranking(table_name: str, *, dialect: str, words: Sequence[str]) -> Ranking:
    if not words:
        raise ValueError("no words to search for")
    columns = SEARCHABLE[table_name]
    if dialect == "sqlite":
        fts_name = f"{table_name}_fts"
        fts = table(fts_name, literal_column("rowid"))
        # Each word an FTS5 string: quoted, so NEAR/AND/OR/NOT and * are plain text; the words hold no quote.
        expression = " ".join(f'"{word}"' for word in words)
        fts_column: ColumnElement[Any] = literal_column(fts_name)
        weights: list[ColumnElement[Any]] = [literal_column(repr(_BM25_WEIGHTS[weight])) for _, weight in columns]
        # bm25 is lower for better matches; negated so that both engines rank higher-is-better.
        score: ColumnElement[float] = -func.bm25(fts_column, *weights, type_=Float)
        onclause = literal_column(f"{fts_name}.rowid") == literal_column(f"{table_name}.rowid")
        return Ranking(score, (fts, onclause), fts_column.op("MATCH")(literal(expression, String)))
    # websearch_to_tsquery never raises on its input; quoting each word keeps "or" and "-" from being operators.
    query = func.websearch_to_tsquery(
        literal_column("'english'::regconfig"), literal(" ".join(f'"{word}"' for word in words), String)
    )
    vector: ColumnElement[Any] = literal_column(f"{table_name}.search_vector")
    # Normalisation 1 divides by 1 + log(length): a word in a short text ranks above the same word in a long one,
    # as bm25 does on SQLite (plain ts_rank would tie them).
    score = func.ts_rank(vector, query, literal_column("1"), type_=Float)
    return Ranking(score, None, vector.op("@@")(query))
