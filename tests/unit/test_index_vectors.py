from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.errors import IndexStateError
from assistant.index.store import NewChunk, NewDocument, Store
from assistant.index.vectors import VectorIndex


def _unit(values: list[float]) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_search_add_remove_and_atomic_save(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path / "i.faiss", 3)
    index.add(np.array([10, 20]), np.vstack([_unit([1, 0, 0]), _unit([0, 1, 0])]))
    hits = index.search(_unit([1, 0.1, 0]), 2)
    assert [chunk_id for chunk_id, _ in hits] == [10, 20]
    assert hits[0][1] == pytest.approx(float(_unit([1, 0.1, 0])[0]), abs=1e-5)
    index.remove([10])
    index.save()
    assert not list(tmp_path.glob(".index-*"))  # no temporary file left behind
    reloaded = VectorIndex.open(tmp_path / "i.faiss", 3)
    assert reloaded.ids().tolist() == [20]


def test_corrupt_or_mismatched_index_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "i.faiss"
    path.write_bytes(b"not an index")
    with pytest.raises(IndexStateError, match="assistant reindex"):
        VectorIndex.open(path, 3)
    index = VectorIndex(path, 3)
    index.save()
    with pytest.raises(IndexStateError, match="dimensional"):
        VectorIndex.open(path, 4)


def test_reconcile_brings_index_in_step_with_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    chunks = [NewChunk(i, f"t{i}", 1, 1, None, "", 1, _unit([1, i, 0])) for i in range(3)]
    _, ids = store.replace_file(
        "/a", [NewDocument("/a", "/a", "text", "a", "h", "h", 1, 1.0, chunks)]
    )
    index = VectorIndex(tmp_path / "i.faiss", 3)
    index.add(np.array([999]), _unit([0, 0, 1]).reshape(1, -1))  # stale: not in the store
    added, removed = index.reconcile(store)
    assert (added, removed) == (3, 1)
    assert sorted(index.ids().tolist()) == ids
    assert index.reconcile(store) == (0, 0)


def test_single_query_search_runs_on_one_thread_and_restores_the_setting() -> None:
    import faiss

    from assistant.index.vectors import one_thread

    before = faiss.omp_get_max_threads()
    with one_thread():
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    with pytest.raises(RuntimeError), one_thread():
        raise RuntimeError("a failing search")
    assert faiss.omp_get_max_threads() == before
