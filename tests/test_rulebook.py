"""Learned edit rules through the agent: learned from edits with the learning step (exactly once, also through
the job runner), applied to drafts where they are active, per user and tenant, and read, switched, rewritten
and deleted by the user. Hash embedder and a scripted generator (fast, deterministic)."""

import pytest

from redline.agent import GenerateOptions, InvalidRule, RuleConflict, UnknownRule, UnknownUser

from doubles import ScriptedGenerator

BIKES = ["The city council voted to expand the bike lane network by forty miles over five years.",
         "City council members approved protected bike lanes after the network expansion vote.",
         "The council said the bike lane network expansion will take five years and forty miles.",
         "Bike lane network: the city council expansion plan, forty miles in five years."]
BAKING = ["This sourdough recipe needs flour, water, salt and a long cold fermentation overnight.",
          "Knead the sourdough flour and water, add salt, then rest the dough overnight.",
          "Sourdough needs a cold overnight fermentation of flour, water and salt dough."]
DRAFT = "We utilize the new plan for the city. It helps everyone in town."
FIXED = "We use the new plan for the city. It helps everyone in town."


def respond(prompt, i):
    content = prompt[-1]["content"]
    if "Combine them" in content:
        return "plain words"
    if "describe the writing style" in content:
        return "plain words"
    if "sourdough" in content.lower() and "machine" not in content:
        return "We knead the dough for the bread. It helps everyone in town."  # no chance for the rule
    return DRAFT


@pytest.fixture
def agent(make_agent):
    return make_agent(ScriptedGenerator(respond), k=2)


def teach(agent, user, context, *, tenant="default", fix=lambda text: text.replace("utilize", "use")):
    result = agent.generate(user, context, tenant=tenant)
    agent.learn(result.interaction_id, fix(result.text), tenant=tenant)
    return result


def rules_of(agent, user, tenant="default"):
    return agent.preferences(user, tenant=tenant)["rules"]


def test_a_fix_made_twice_comes_back_made_with_its_provenance(agent):
    taught = [teach(agent, "alice", ctx) for ctx in BIKES[:2]]
    [rule] = rules_of(agent, "alice")
    assert rule["description"] == "replace 'utilize' with 'use'" and rule["kind"] == "replace_phrase"
    assert rule["params"] == {"old": "utilize", "new": "use"} and rule["text"] == "use"
    assert (rule["support"], rule["contradictions"], rule["precision"], rule["active"]) == (2, 0, 1.0, True)
    assert rule["taught_by"] == [taught[1].interaction_id, taught[0].interaction_id]
    assert rule["origin"] == "mined" and rule["enabled"] is None and rule["first_seen"] <= rule["last_seen"]

    result = agent.generate("alice", BIKES[2])
    assert result.text == FIXED
    assert result.applied_rules == [{"id": rule["id"], "kind": "replace_phrase",
                                     "description": "replace 'utilize' with 'use'"}]
    assert result.candidates[0]["raw_text"] == DRAFT and result.candidates[0]["applied_rules"] == [rule["id"]]
    stored = agent.store.interaction(result.interaction_id)
    assert (stored["draft"], stored["raw_draft"], stored["applied_rules"]) == (FIXED, DRAFT, [rule["id"]])
    assert "rules_ms" in result.timings_ms


def test_a_rule_that_fired_and_was_kept_is_support_and_one_undone_a_contradiction(agent):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    kept = teach(agent, "alice", BIKES[2], fix=lambda text: text)  # the fired rule kept as is
    assert kept.applied_rules and agent.interaction(kept.interaction_id)["edit"]["cost"] == 0
    assert rules_of(agent, "alice")[0]["support"] == 3
    undone = teach(agent, "alice", BIKES[3], fix=lambda text: text.replace("use", "utilize"))
    assert undone.applied_rules  # fired, and the user undid it
    [rule] = rules_of(agent, "alice")
    assert (rule["support"], rule["contradictions"], rule["active"]) == (3, 1, False)  # precision 0.75 < 0.8
    left = teach(agent, "alice", BIKES[3] + " Later.", fix=lambda text: text.replace("use", "utilize"))
    assert left.text == DRAFT and not left.applied_rules  # deactivated: the user keeps 'utilize' again
    assert rules_of(agent, "alice")[0]["contradictions"] == 2


def test_a_rule_applies_where_it_was_learned_or_where_it_holds_everywhere(make_agent):
    agent = make_agent(ScriptedGenerator(respond), k=3)
    for ctx in BIKES[:3]:
        teach(agent, "alice", ctx)
    for ctx, word in zip(BAKING[:2], ("bakers", "cooks")):  # here the drafts offer no chance: no evidence
        teach(agent, "alice", ctx, fix=lambda text, word=word: text.replace("everyone", word))
    machine = BAKING[2] + " Use the bread machine."
    assert agent.generate("alice", machine).text == FIXED  # active over all edits, no neighbour against it
    for i in range(7):  # now this user keeps 'utilize' on baking contexts
        teach(agent, "alice", f"{BAKING[i % 3]} The bread machine, batch {i}.",
              fix=lambda text, i=i: text.replace("use", "utilize").replace("everyone", f"batch {i}"))
    [rule] = [r for r in rules_of(agent, "alice") if r["text"] == "use"]
    assert (rule["support"], rule["contradictions"], rule["active"]) == (3, 7, False)
    # among the bike neighbours it is active (3 of 3 where the user makes it 3 times in 10: no chance), so it applies
    assert agent.generate("alice", BIKES[3]).text == FIXED
    assert agent.generate("alice", machine + " Knead machine flour.").text == DRAFT  # contradicted here


def always_the_draft(prompt, i):
    content = prompt[-1]["content"]
    return "plain words" if "Combine them" in content or "describe the writing style" in content else DRAFT


@pytest.mark.parametrize("scoped", [True, False])
def test_a_fix_made_on_one_kind_of_text_applies_there_though_no_neighbours_show_it(make_agent, tmp_path, scoped):
    # one nearest context can never make a rule active locally (two supporting edits needed): only the scope can
    agent = make_agent(ScriptedGenerator(always_the_draft), k=1, rules_scope=scoped, data_dir=tmp_path / str(scoped))
    for ctx, word in zip(BAKING, ("bakers", "cooks", "people")):  # 'utilize' kept on baking texts
        teach(agent, "alice", ctx, fix=lambda text, word=word: text.replace("everyone", word))
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    [rule] = [r for r in rules_of(agent, "alice") if r["text"] == "use"]
    assert (rule["support"], rule["contradictions"], rule["active"]) == (2, 3, False)
    bikes = agent.generate("alice", BIKES[2])
    assert bikes.text == (FIXED if scoped else DRAFT)
    assert [r["id"] for r in bikes.applied_rules] == ([rule["id"]] if scoped else [])
    assert agent.generate("alice", BAKING[0] + " Rest it.").text == DRAFT  # where the user keeps 'utilize'


@pytest.mark.parametrize("scope_min_support", [1, 2])
def test_one_edit_is_evidence_enough_for_a_frame_line_where_its_scope_expects_it_never_for_a_word_choice(
        make_agent, tmp_path, scope_min_support):
    agent = make_agent(ScriptedGenerator(always_the_draft), k=1, rules_scope_min_support=scope_min_support,
                       data_dir=tmp_path / str(scope_min_support))
    for ctx in BIKES[:3]:  # kept as drafted: chances to open with the line and to say 'bakers', not taken
        teach(agent, "alice", ctx, fix=lambda text: text)
    teach(agent, "alice", BAKING[0], fix=lambda text: "Bake it slow.\n\n" + text.replace("everyone", "bakers"))
    rules = {r["kind"]: r for r in rules_of(agent, "alice")}
    assert (rules["opening_line"]["support"], rules["opening_line"]["contradictions"]) == (1, 3)
    assert (rules["replace_phrase"]["support"], rules["replace_phrase"]["contradictions"]) == (1, 3)
    baking = agent.generate("alice", BAKING[2])
    assert baking.text == ("Bake it slow.\n\n" + DRAFT if scope_min_support == 1 else DRAFT)  # 'everyone' stays
    assert [r["kind"] for r in baking.applied_rules] == (["opening_line"] if scope_min_support == 1 else [])
    assert agent.generate("alice", BIKES[3]).text == DRAFT  # where the user had the chance and left it


def test_one_edit_against_a_single_left_chance_is_no_evidence_for_a_scope(make_agent):
    agent = make_agent(ScriptedGenerator(always_the_draft), k=1)
    teach(agent, "alice", BIKES[0], fix=lambda text: text)
    teach(agent, "alice", BAKING[0], fix=lambda text: "Bake it slow.\n\n" + text)
    [rule] = rules_of(agent, "alice")
    assert (rule["kind"], rule["support"], rule["contradictions"]) == ("opening_line", 1, 1)
    assert agent.generate("alice", BAKING[2]).text == DRAFT
    teach(agent, "alice", BIKES[1], fix=lambda text: text)  # a second chance left: now the scope tells
    assert agent.generate("alice", BAKING[2]).text == "Bake it slow.\n\n" + DRAFT


def test_a_rule_the_user_turned_off_is_not_scoped_back_on(make_agent):
    agent = make_agent(ScriptedGenerator(always_the_draft), k=1)
    for ctx, word in zip(BAKING, ("bakers", "cooks", "people")):
        teach(agent, "alice", ctx, fix=lambda text, word=word: text.replace("everyone", word))
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    [rule] = [r for r in rules_of(agent, "alice") if r["text"] == "use"]
    agent.update_rule("alice", rule["id"], enabled=False)
    assert agent.generate("alice", BIKES[2]).text == DRAFT


def test_another_users_or_tenants_rules_never_apply(agent):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    assert agent.generate("alice", BIKES[2]).applied_rules
    bob = agent.generate("bob", BIKES[2])
    assert bob.text == DRAFT and bob.applied_rules == []
    elsewhere = agent.generate("alice", BIKES[2], tenant="acme")
    assert elsewhere.text == DRAFT and elsewhere.applied_rules == []
    assert rules_of(agent, "alice", tenant="acme") == [] and rules_of(agent, "bob") == []
    rule_id = rules_of(agent, "alice")[0]["id"]
    for user, tenant in (("bob", "default"), ("alice", "acme")):
        with pytest.raises(UnknownRule, match=f"unknown rule id {rule_id}"):
            agent.update_rule(user, rule_id, enabled=False, tenant=tenant)
        with pytest.raises(UnknownRule):
            agent.delete_rule(user, rule_id, tenant=tenant)
    assert rules_of(agent, "alice")[0]["enabled"] is None


def test_a_request_or_the_server_can_turn_rules_off(agent, make_agent, tmp_path):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    off = agent.generate("alice", BIKES[2], options=GenerateOptions(rules=False))
    assert off.text == DRAFT and off.applied_rules == [] and "rules_ms" not in off.timings_ms
    server_off = make_agent(ScriptedGenerator(respond), k=2, rules=False, data_dir=tmp_path / "off")
    for ctx in BIKES[:3]:
        assert teach(server_off, "alice", ctx).text == DRAFT
    assert rules_of(server_off, "alice") == [] and server_off.store.counts()["rule_observations"] == 0


def test_rules_only_keeps_the_preference_out_of_the_prompt(agent):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    result = agent.generate("alice", BIKES[2], options=GenerateOptions(use_preference=False))
    assert result.preference is None and result.neighbours and result.text == FIXED
    assert "plain words" not in result.prompt[-1]["content"]


def test_rules_are_learned_exactly_once_through_the_job_runner(agent):
    ids = []
    for ctx in BIKES[:3]:
        result = agent.generate("alice", ctx)
        agent.submit_edit(result.interaction_id, FIXED)
        ids.append(result.interaction_id)
    outcomes = agent.run_jobs()
    assert [o.outcome for o in outcomes] == ["learned"] * 3
    before = agent.store.counts()["rule_observations"]
    assert before == 3  # one rule, one verdict per edit
    again = agent.process_edit(ids[0])  # a job run again after a crash
    assert again.already_learned and agent.store.counts()["rule_observations"] == before
    assert agent.run_jobs() == []
    assert rules_of(agent, "alice")[0]["support"] == 3


def test_a_user_switches_rewrites_and_deletes_a_rule(agent):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    rule_id = rules_of(agent, "alice")[0]["id"]
    assert agent.update_rule("alice", rule_id, enabled=False)["enabled"] is False
    assert agent.generate("alice", BIKES[2]).text == DRAFT
    assert agent.update_rule("alice", rule_id, enabled=None)["active"] is True
    rewritten = agent.update_rule("alice", rule_id, text="employ")
    assert rewritten["description"] == "replace 'utilize' with 'employ'" and rewritten["origin"] == "user"
    # recounted over the user's edits: 'utilize' went, but not for 'employ' (no evidence either way)
    assert rewritten["id"] == rule_id and (rewritten["support"], rewritten["contradictions"]) == (0, 0)
    assert not rewritten["active"] and rewritten["taught_by"] == []
    assert agent.update_rule("alice", rule_id, enabled=True)["active"] is True  # the user's word wins
    assert agent.generate("alice", BIKES[3]).text == FIXED.replace("use", "employ")
    agent.delete_rule("alice", rule_id)
    assert rules_of(agent, "alice") == [] and agent.generate("alice", BIKES[3]).text == DRAFT


@pytest.mark.parametrize("text,message", [
    ("", "rule text must not be empty"),
    ("   ", "rule text must not be empty"),
    ("x" * 201, "rule text is longer than 200 characters"),
])
def test_bad_rule_text_is_rejected_and_changes_nothing(agent, text, message):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    rule_id = rules_of(agent, "alice")[0]["id"]
    with pytest.raises(InvalidRule, match=message):
        agent.update_rule("alice", rule_id, text=text)
    assert rules_of(agent, "alice")[0]["text"] == "use"


def test_unknown_rules_users_and_empty_changes(agent):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    rule_id = rules_of(agent, "alice")[0]["id"]
    with pytest.raises(UnknownRule, match="unknown rule id 999"):
        agent.update_rule("alice", 999, enabled=False)
    with pytest.raises(UnknownRule):
        agent.delete_rule("alice", 999)
    with pytest.raises(UnknownUser):
        agent.update_rule("ghost", rule_id, enabled=False)
    with pytest.raises(InvalidRule, match="nothing to change"):
        agent.update_rule("alice", rule_id)


def test_a_rewrite_into_a_rule_the_user_has_is_a_conflict(agent):
    for ctx in BIKES[:2]:
        teach(agent, "alice", ctx)
    teach(agent, "alice", BIKES[2], fix=lambda text: text.replace("use", "employ"))
    rules = {r["text"]: r["id"] for r in rules_of(agent, "alice")}
    assert set(rules) == {"use", "employ"}
    with pytest.raises(RuleConflict, match=f"rule {rules['use']} already does this"):
        agent.update_rule("alice", rules["employ"], text="use")
    assert agent.update_rule("alice", rules["employ"], text="apply")["text"] == "apply"


def test_export_and_hard_delete_include_rules(agent):
    taught = [teach(agent, "alice", ctx) for ctx in BIKES[:2]]
    [rule] = agent.export_user("alice")["rules"]
    assert rule["key"].startswith("replace_phrase:") and {o["interaction_id"] for o in rule["observations"]} == {
        t.interaction_id for t in taught}
    removed = agent.delete_user("alice")
    assert removed["rules"] == 1 and removed["rule_observations"] == 2
    assert agent.store.counts()["rules"] == 0


FESTIVAL = ("The pumpkin festival returns to the town square this October with music, local bakers, a parade of "
            "carved lanterns, hay rides for children and a contest for the heaviest pumpkin grown in the county. "
            "Tickets cost five dollars, and volunteers still wanted for the cider stand and the evening cleanup.")


def first_sentence_drafts(prompt, i):
    content = prompt[-1]["content"]
    if "Combine them" in content or "describe the writing style" in content:
        return "one sentence"
    if "pumpkin" in content:
        return "What a week it was! The pumpkin festival returns to the town square this October with music."
    return "The council expands the bike lane network by forty miles. It will take five years to build."


def test_a_rule_that_would_leave_nothing_of_the_document_is_not_applied(make_agent):
    """A one-sentence limit learned on bike-lane summaries, on a draft whose first sentence is an exclamation:
    cutting it there (or at ten words) would leave nothing of the festival document (the user would write the
    summary themselves), so the draft goes out as generated."""
    agent = make_agent(ScriptedGenerator(first_sentence_drafts), k=2)
    for ctx in BIKES[:3]:
        teach(agent, "alice", ctx, fix=lambda text: text.split(". ")[0] + ".")
    [rule] = [r for r in rules_of(agent, "alice") if r["kind"] == "max_sentences"]
    assert rule["active"] and rule["params"] == {"n": 1}
    assert agent.generate("alice", BIKES[3]).text == "The council expands the bike lane network by forty miles."
    festival = agent.generate("alice", FESTIVAL)
    assert festival.text == first_sentence_drafts([{"content": FESTIVAL}], 0) and festival.applied_rules == []
