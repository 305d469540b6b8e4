import numpy as np
import pytest

from redline.retrieval import IndexCache, PreferenceIndex


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_search_orders_by_cosine_similarity():
    idx = PreferenceIndex(_unit([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1]]), [7, 8, 9])
    hits = idx.search(_unit([[1, 0.1, 0]])[0], k=2)
    assert [h.preference_id for h in hits] == [7, 8]
    assert hits[0].similarity > hits[1].similarity
    assert len(idx.search(_unit([[1, 0, 0]])[0], k=10)) == 3


def test_empty_index_and_bad_query():
    idx = PreferenceIndex(np.zeros((0, 3), dtype=np.float32), [])
    assert idx.search(np.ones(3, dtype=np.float32), 5) == []
    full = PreferenceIndex(_unit([[1, 0, 0]]), [1])
    with pytest.raises(ValueError, match="dimension"):
        full.search(np.ones(4, dtype=np.float32), 1)


def test_cache_rebuilds_on_version_change_and_is_bounded():
    cache = IndexCache(max_users=2)
    built = []

    def build(uid):
        def _b():
            built.append(uid)
            return PreferenceIndex(_unit([[1, 0]]), [uid])
        return _b

    cache.get(1, 0, build(1))
    cache.get(1, 0, build(1))
    assert built == [1]
    cache.get(1, 1, build(1))  # the user's version moved: rebuilt
    assert built == [1, 1]
    cache.get(2, 0, build(2))
    cache.get(3, 0, build(3))
    assert len(cache) == 2 and 1 not in cache
    cache.drop(2)
    assert 2 not in cache
