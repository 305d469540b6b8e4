"""policies/: features, the mixture reward model, Hedge routing, candidate planning and selection."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import redline.policies as policies
from redline.evals.lamp import evaluate_lamp, format_table, load_writers
from redline.policies import (
    CandidatePlan,
    MixtureRewardModel,
    NotFittedError,
    RewardCheckpoints,
    RewardFeatures,
    StyleFeatures,
    batch_layout,
    combine,
    hedge_step,
    plan_candidates,
    read_pairs_jsonl,
    replay,
    score_candidates,
    select,
    update_state,
)


def test_policies_all():
    assert sorted(policies.__all__) == sorted([
        "StyleFeatures", "RewardFeatures", "MixtureRewardModel", "NotFittedError", "hedge_step", "update_state",
        "replay", "combine", "describe_state", "STRATEGIES", "CandidatePlan", "plan_candidates", "batch_layout",
        "score_candidates", "select", "EmbeddingCache", "RewardCheckpoints", "pair_features", "read_pairs_jsonl",
        "TrainedRewards", "train_reward_model"])


# -- features ---------------------------------------------------------------------------------------

def test_style_features_see_form():
    style = StyleFeatures()
    rows = style.transform(["A plain sentence here. Another one follows.",
                            "- first item\n- second item\n- third item",
                            "Is it? Really? Why?"])
    names = list(StyleFeatures.names)
    assert rows.shape == (3, len(names)) and rows.dtype == np.float32
    assert rows[1, names.index("list_items")] == 1.0 and rows[0, names.index("list_items")] == 0.0
    assert rows[2, names.index("questions")] > 0 and rows[0, names.index("questions")] == 0
    assert style.transform([""]).shape == (1, len(names))
    with pytest.raises(TypeError):
        style.transform("one string")


def test_reward_features_broadcast_context_and_cosine():
    rng = np.random.default_rng(0)
    ctx = rng.normal(size=8).astype(np.float32)
    cands = rng.normal(size=(3, 8)).astype(np.float32)
    phi = RewardFeatures().transform(ctx, cands, ["a", "b b", "c c c"])
    assert phi.shape == (3, RewardFeatures().dim(8))
    np.testing.assert_allclose(phi[:, -1], cands @ ctx, rtol=1e-5)
    assert RewardFeatures(use_embedding=False).transform(ctx, cands, ["a", "b", "c"]).shape == (3, 25)
    with pytest.raises(ValueError):
        RewardFeatures().transform(ctx, cands, ["a"])


# -- the mixture ------------------------------------------------------------------------------------

CENTRES = np.random.default_rng(99).normal(size=(2, 16))


def planted(n=300, d=6, seed=0, same_context=False):
    """Two groups with opposite preferences along the same feature direction."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    ctx = (np.zeros((n, 16)) + CENTRES[0] if same_context else CENTRES[g]) + 0.3 * rng.normal(size=(n, 16))
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    u = np.zeros(d)
    u[0], u[1] = 3.0, 1.0
    first = ((a - b) * np.where(g[:, None] == 0, u, -u)).sum(1) > 0
    chosen, rejected = np.where(first[:, None], a, b), np.where(first[:, None], b, a)
    return ctx.astype(np.float32), chosen.astype(np.float32), rejected.astype(np.float32), g


def accuracy(p):
    return float(np.mean(p > 0.5))


def test_planted_mixture_is_recovered_and_single_bt_cannot_be():
    ctx, w, lo, g = planted()
    cte, we, le, ge = planted(seed=1)
    single = MixtureRewardModel(n_heads=1, seed=0).fit(ctx, w, lo)
    mixture = MixtureRewardModel(n_heads=2, seed=0).fit(ctx, w, lo)
    assert accuracy(single.predict_proba(cte, we, le)) <= 0.62  # irreducible: the groups cancel out
    assert accuracy(mixture.predict_proba(cte, we, le)) >= 0.9
    # each group is routed to its own head, and that head ranks the group's pairs
    pi = mixture.route(cte)
    assert np.argmax(pi[ge == 0].mean(0)) != np.argmax(pi[ge == 1].mean(0))
    # online routing from a handful of a group's pairs concentrates on the same head as the router
    for group in (0, 1):
        state = replay(mixture.head_losses(w[g == group][:15], lo[g == group][:15]), 2)
        assert max(state["weights"]) > 0.9
        assert np.argmax(state["weights"]) == np.argmax(pi[ge == group].mean(0))


def test_same_contexts_need_online_routing():
    """Users who write the same kind of context but want opposite things: only their routing state tells them apart."""
    ctx, w, lo, g = planted(same_context=True)
    cte, we, le, ge = planted(seed=1, same_context=True)
    mixture = MixtureRewardModel(n_heads=2, seed=0).fit(ctx, w, lo, groups=g)
    assert accuracy(mixture.predict_proba(cte, we, le)) <= 0.62
    routed = np.zeros(len(ge))
    for group in (0, 1):
        state = replay(mixture.head_losses(w[g == group][:10], lo[g == group][:10]), 2)
        mask = ge == group
        routed[mask] = mixture.predict_proba(cte[mask], we[mask], le[mask],
                                             weights=combine(mixture.route(cte[mask]), state["weights"]))
    assert accuracy(routed) >= 0.9


def test_fit_returns_self_and_is_deterministic():
    ctx, w, lo, _ = planted(n=80)
    a = MixtureRewardModel(n_heads=3, seed=4, max_iter=50)
    assert a.fit(ctx, w, lo) is a
    b = MixtureRewardModel(n_heads=3, seed=4, max_iter=50).fit(ctx, w, lo)
    np.testing.assert_array_equal(a.head_weights_, b.head_weights_)
    before = a.loss(ctx, w, lo)
    assert a.partial_fit(ctx, w, lo) is a and a.loss(ctx, w, lo) <= before + 1e-9
    assert a.n_pairs_seen_ == 160


def test_not_fitted_and_bad_parameters():
    model = MixtureRewardModel()
    for call in (lambda: model.rewards(np.zeros((1, 3))), lambda: model.route(np.zeros((1, 3))),
                 lambda: model.save("unused")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    with pytest.raises(ValueError, match="n_heads"):
        MixtureRewardModel(n_heads=0).fit(np.zeros((2, 3)), np.zeros((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="no pairs"):
        MixtureRewardModel().fit(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 4)))


def test_save_load_roundtrip(tmp_path):
    ctx, w, lo, _ = planted(n=60)
    model = MixtureRewardModel(n_heads=2, seed=1, max_iter=40).fit(ctx, w, lo)
    folder = model.save(tmp_path / "ckpt", meta={"pairs": 60})
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "redline.mixture_reward" and config["format_version"] == 1
    assert set(config["versions"]) >= {"redline", "numpy"} and config["hyperparameters"]["n_heads"] == 2
    loaded = MixtureRewardModel.load(folder)
    np.testing.assert_allclose(loaded.predict_proba(ctx, w, lo), model.predict_proba(ctx, w, lo), rtol=1e-6)
    assert loaded.meta_ == {"pairs": 60} and loaded.get_params() == model.get_params()
    (folder / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="not a version-1"):
        MixtureRewardModel.load(folder)


def test_checkpoints_swap_atomically(tmp_path):
    ctx, w, lo, _ = planted(n=40)
    ckpts = RewardCheckpoints(tmp_path / "rewards", keep=2)
    assert ckpts.current() is None
    names = [ckpts.publish(MixtureRewardModel(n_heads=2, max_iter=5, seed=s).fit(ctx, w, lo), {"last_pair_id": s})
             for s in range(3)]
    assert ckpts.current_info()["name"] == names[-1] and ckpts.current_info()["last_pair_id"] == 2
    assert ckpts.current().seed == 2
    assert sorted(p.name for p in (tmp_path / "rewards").glob("ckpt-*")) == sorted(names[-2:])


# -- routing ----------------------------------------------------------------------------------------

def test_hedge_step_matches_the_formula_and_survives_huge_losses():
    w = np.array([0.5, 0.3, 0.2])
    losses = np.array([0.1, 1.0, 2.0])
    expected = w * np.exp(-losses / 0.5)
    expected /= expected.sum()
    np.testing.assert_allclose(np.exp(hedge_step(np.log(w), losses, tau=0.5)), expected, rtol=1e-12)
    huge = np.exp(hedge_step(np.log(w), np.array([1e5, 2e5, 3e5]), tau=0.01))
    assert np.isfinite(huge).all() and huge[0] == pytest.approx(1.0)
    shared = np.exp(hedge_step(np.log(w), np.array([0.0, 1e5, 1e5]), share=0.03))
    assert shared.min() == pytest.approx(0.01) and shared.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        hedge_step(np.log(w), losses, tau=0)


def test_update_state_and_combine():
    state = update_state(None, [0.1, 2.0], tau=1.0)
    assert state["steps"] == 1 and state["weights"][0] > state["weights"][1]
    assert update_state({"weights": [1.0], "steps": 7}, [0.1, 0.2])["steps"] == 1  # heads changed: restart
    np.testing.assert_allclose(combine([0.5, 0.5], [0.9, 0.1]), [0.9, 0.1])
    np.testing.assert_allclose(combine([[0.2, 0.8]], None), [[0.2, 0.8]])
    assert combine([0.2, 0.8], [1.0, 0.0])[0] == pytest.approx(1.0)


# -- planning and selection -------------------------------------------------------------------------

def test_plans():
    assert plan_candidates("greedy", "t", [("neighbour:1", "x")], 4) == [CandidatePlan("t", "target", 0)]
    assert [p.sample for p in plan_candidates("best_of_n", "t", (), 3)] == [0, 1, 2]
    plan = plan_candidates("rps", "Be brief", [("neighbour:1", "be brief."), ("neighbour:2", "use lists"),
                                               ("neighbour:3", "use lists"), ("neighbour:4", "formal tone")], 3)
    assert [(p.preference, p.source) for p in plan] == [("Be brief", "target"), ("use lists", "neighbour:2"),
                                                        ("formal tone", "neighbour:4")]
    padded = plan_candidates("rps", None, [("neighbour:1", "use lists")], 4)
    assert [(p.source, p.sample) for p in padded] == [("target", 0), ("neighbour:1", 0), ("target", 1),
                                                      ("target", 2)]
    layout = batch_layout(padded)
    assert layout.preferences == [None, "use lists"] and layout.n == 3
    assert layout.slots == [(0, 0), (1, 0), (0, 1), (0, 2)]
    assert batch_layout(plan_candidates("best_of_n", "t", (), 4)).n == 4
    with pytest.raises(ValueError, match="unknown strategy"):
        plan_candidates("beam", "t", (), 2)


def test_score_and_select():
    rng = np.random.default_rng(0)
    ctx = rng.normal(size=(30, 8)).astype(np.float32)
    feats = RewardFeatures(use_embedding=False)
    short, long_ = ["Short."] * 30, ["A much longer answer that keeps going and going for a while."] * 30
    phi_s, phi_l = feats.transform(ctx, ctx, short), feats.transform(ctx, ctx, long_)
    model = MixtureRewardModel(n_heads=2, seed=0, max_iter=100).fit(ctx, phi_s, phi_l)
    out = score_candidates(model, feats, ctx[0], np.stack([ctx[0], ctx[0]]), [long_[0], short[0]], [0.5, 0.5])
    assert out["scores"].shape == (2,) and out["weights"].sum() == pytest.approx(1.0)
    assert select(out["win_rates"]) == 1 and out["win_rates"].sum() == pytest.approx(1.0)
    assert select([1.0, 1.0, 0.5]) == 0
    with pytest.raises(ValueError):
        select([])


def test_read_pairs_jsonl(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"context": "c", "chosen": "a", "rejected": "b", "user": "u1"}\n\n'
                    '{"context": "c", "chosen": "a", "rejected": "b"}\n')
    assert [p["user"] for p in read_pairs_jsonl(path)] == ["u1", None]
    path.write_text('{"context": "c", "chosen": "a"}\n')
    with pytest.raises(ValueError, match="line 1 .* needs non-empty strings"):
        read_pairs_jsonl(path)


# -- the LAMP evaluation on a tiny synthetic folder -------------------------------------------------

def fake_encode(texts):
    out = np.stack([np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(size=12)
                    for t in texts]).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_lamp_evaluation_format(tmp_path):
    rng = np.random.default_rng(0)
    drafts = [" ".join(rng.choice(["word", "other", "thing", "long", "text"], 30)) + "." for _ in range(12)]
    for writer, edit in (("A", lambda d: d[:60] + "."), ("B", lambda d: d + " Really? Yes!")):
        rows = [{"instruction": f"write {i}", "preedit": d, "postedit": edit(d)} for i, d in enumerate(drafts)]
        (tmp_path / f"lamp_{writer}_edits.json").write_text(json.dumps(rows))
    writers = load_writers(tmp_path)
    assert sorted(writers) == ["A", "B"]
    result = evaluate_lamp(writers, fake_encode, n_heads=2, folds=3, max_iter=60)
    assert result["writers"] == 2
    for method in ("single_bt", "mixture", "routed"):
        assert set(result[method]) == {"vs_draft", "vs_other_writer"}
    assert result["single_bt"]["vs_other_writer"] == pytest.approx(0.5)  # one reward cannot prefer both
    assert 0.0 <= result["routed"]["vs_other_writer"] <= 1.0 and result["routing"]["folds"] == 3
    assert "(c) mixture, per-writer routing" in format_table(result)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no edit files"):
        load_writers(empty)
