"""Fixtures for the API tests: one running logpond shared by a whole test module.

Most API tests only read: they ingest a known data set once per module and ask many questions of it.
Module-scoped async fixtures need the module's event loop, so modules using ``module_env`` set
``pytestmark = pytest.mark.asyncio(loop_scope="module")``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from logpond.store.chdb_store import ChDBStore
from tests.conftest import Env, make_settings, running_env


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_env(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    """A running app over its own chDB database and metadata, shared by every test of one module."""
    store = ChDBStore(chdb_path, database=f"m_{uuid.uuid4().hex[:12]}")
    store.migrate()
    settings = make_settings(tmp_path_factory.mktemp("module_env"))
    try:
        async with running_env(settings, store) as env:
            yield env
    finally:
        store.drop_database()
