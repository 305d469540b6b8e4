"""evals.recurrence: which of a writer's changes repeat, and how much of their next edits those account for."""

from __future__ import annotations

from redline.evals.recurrence import changes, main, recurrence


def _edit(draft: str, kept: str) -> dict:
    return {"preedit": draft, "postedit": kept}


def test_changes_pair_a_deleted_run_with_what_replaced_it():
    assert changes("We utilize the tool daily.", "We use the tool.") == [("utilize", "use", 1), ("daily", "", 1)]
    assert changes("Same text.", "Same text.") == []


def test_a_change_made_twice_is_repeated_and_counts_on_held_out_edits():
    items = [_edit("We utilize it. It rains.", "We use it. It rains."),
             _edit("They utilize maps.", "They use maps."),
             _edit("A very long day.", "A long day."),
             # held out: one change seen before (utilize -> use), one new (big -> large)
             _edit("I utilize a big pen.", "I use a large pen.")]
    r = recurrence(items, learn_edits=3)
    assert r["repeated_changes"] == ["utilize -> use"]
    assert r["learned_changes"] == 2
    assert r["held_out_distance"] == 2 and r["distance_in_seen_changes"] == 1
    assert r["held_out_edits_with_a_seen_change"] == 1


def test_cli_on_the_shipped_writers(capsys):
    results = main(["--learn-edits", "10"])
    assert set(results) == {"W3", "W12", "W16"}
    for r in results.values():
        assert r["learned_edits"] == 10 and r["held_out_edits"] == 40
        assert 0 <= r["distance_in_seen_changes"] <= r["held_out_distance"]
    assert "| W3 |" in capsys.readouterr().out
