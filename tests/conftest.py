"""Shared fixtures: a temporary home per test and one loaded embedder per session."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.index.home import Home
from tests.postgres import Server, running_server

# A shell starts a background job with SIGINT ignored, and an ignored signal stays ignored in
# every program it starts: the tests of Ctrl-C (which send SIGINT to the assistant, in this
# process or in a child) would then test nothing. Python's own handler, as in a foreground run.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPOSITORY = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = REPOSITORY / "corpora" / "sample"
SHARED_DATA = REPOSITORY.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    config = Config.load(environ={})
    # The reference: sentence-transformers on torch. The default (exported) backend is compared
    # against it in test_embedding.py, and runs in every end-to-end test through the CLI.
    return Embedder(config.embedding_model, "cpu", config.embed_batch_size, backend="torch")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.load(environ={}, home=tmp_path / "home")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """One PostgreSQL server with pgvector for the session (see tests/postgres.py)."""
    try:
        context = running_server()
        server = context.__enter__()
    except RuntimeError as error:
        pytest.skip(f"no PostgreSQL server for these tests: {error}")
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server: Server) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.fresh_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'a.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def home(config: Config, embedder: Embedder) -> Iterator[Home]:
    assistant_home = Home(config, embedder)
    yield assistant_home
    assistant_home.close()


@pytest.fixture
def any_home(config: Config, embedder: Embedder, store_url: str) -> Iterator[Home]:
    """`home` over each backend: SQLite + FAISS, then PostgreSQL + pgvector (`store_url`)."""
    assistant_home = Home(config.replace(database_url=store_url), embedder)
    yield assistant_home
    assistant_home.close()


def shared_data(name: str) -> Path:
    """A data set under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared evaluation data {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for converted model weights, shared by every test of the session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def sample_environment(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, embedder: Embedder
) -> dict[str, str]:
    """Environment variables for a CLI subprocess over a home holding the sample corpus."""
    from assistant.ingest.pipeline import ingest

    home = tmp_path_factory.mktemp("sample-home")
    config = Config.load(environ={}, home=home)
    assistant_home = Home(config, embedder)
    for _ in ingest(assistant_home, [SAMPLE_CORPUS]):
        pass
    assistant_home.close()
    return {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_CACHE_DIR": str(model_cache),
        "COLUMNS": "120",
    }


@pytest.fixture
def nested_folders() -> Iterator[tuple[Path, Path]]:
    """2,000 folders one inside the other, with a file at the top and one at the bottom; returns
    (top, bottom). Under a short temporary folder, so the deepest path stays within the system's
    limit (4,096 bytes), and made one folder at a time (os.makedirs recurses)."""
    top = Path(tempfile.mkdtemp(prefix="deep-")).resolve()
    (top / "top.md").write_text("# Top\n\nThe top file.\n")
    folders = [top]
    for _ in range(2_000):
        folders.append(folders[-1] / "d")
        folders[-1].mkdir()
    (folders[-1] / "bottom.md").write_text("# Bottom\n\nThe bottom file.\n")
    try:
        yield top, folders[-1]
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)  # iterative, unlike shutil.rmtree
