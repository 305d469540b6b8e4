"""RuleScope: where a rule that does not hold everywhere applies, learned from its evidence's contexts."""

import numpy as np

from redline.agent.rule_scope import RuleScope, ScopeCache


def _cluster(rng, centre, n):
    points = centre + 0.35 * rng.standard_normal((n, centre.size))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_a_scope_tells_the_kind_of_text_where_the_fix_is_made_from_the_rest_even_when_rarer():
    rng = np.random.default_rng(0)
    news, other = np.eye(16)[0], np.eye(16)[1] + np.eye(16)[2]
    made_here, kept_elsewhere = _cluster(rng, news, 4), _cluster(rng, other, 20)  # the fix in one edit of six
    scope = RuleScope.fit(np.vstack([made_here, kept_elsewhere]), np.r_[np.ones(4, bool), np.zeros(20, bool)])
    assert all(scope.score(v) > 0 for v in _cluster(rng, news, 10))
    assert all(scope.score(v) < 0 for v in _cluster(rng, other, 10))


def test_a_scope_needs_both_a_made_and_a_missed_fix():
    vectors = np.eye(4)
    assert RuleScope.fit(vectors, np.ones(4, bool)) is None
    assert RuleScope.fit(vectors, np.zeros(4, bool)) is None


def test_the_cache_keeps_the_newest_entries_none_included():
    cache = ScopeCache(size=2)
    scope = RuleScope(np.ones(3), 0.5)
    cache.put("a", scope)
    cache.put("b", None)
    assert cache.get("a") == (True, scope)  # 'a' is now the newest
    cache.put("c", scope)
    assert cache.get("b") == (False, None) and cache.get("a")[0] and cache.get("c")[0]
    assert scope.score(np.array([1.0, 0.0, -1.0])) == 0.5
