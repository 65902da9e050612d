"""The embedded horde's journals: writes commit in order, and one bad write fails alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, insert, select

from core.horde.server.database import make_engine
from core.horde.server.journal import Journal, LoopJournal, ThreadJournal, Write, write
from core.horde.server.settings import HordeSettings

notes = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("text", String))


def open_journal(kind: str, tmp_path: Path) -> tuple[Journal, Engine]:
    engine = make_engine(HordeSettings(db_url=f"sqlite:///{tmp_path / 'j.db'}"))
    notes.metadata.create_all(engine)
    journal: Journal = LoopJournal(engine) if kind == "loop" else ThreadJournal(engine)
    return journal, engine


def rows(conn: Connection) -> list[tuple[int, str]]:
    return [(row.id, row.text) for row in conn.execute(select(notes).order_by(notes.c.id))]


@pytest.mark.parametrize("kind", ["loop", "thread"])
async def test_writes_commit_in_order_and_a_bad_one_fails_alone(kind: str, tmp_path: Path) -> None:
    journal, engine = open_journal(kind, tmp_path)
    try:
        await write(journal, Write(insert(notes), [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]))
        with pytest.raises(Exception, match="UNIQUE"):
            await journal.run(lambda conn: conn.execute(insert(notes).values(id=1, text="dup")))
        await journal.run(lambda conn: conn.execute(insert(notes).values(id=3, text="c")))
        assert await journal.run(rows) == [(1, "a"), (2, "b"), (3, "c")]
        await journal.checkpoint()
    finally:
        journal.close()
        engine.dispose()
