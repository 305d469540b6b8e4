"""Do a writer's edits repeat? What learning from a writer's first edits could carry to their next drafts.

An edit rule (and a preference quoted from one edit) helps on a new draft only where the writer makes a change they
made before. For each writer of a real-edit corpus (LAMP, CoAuthor) this counts the changes of the word-level diff
(``redline.agent.word_diff``: a deleted run and the run inserted in its place, compared as ``redline.text.norm``
reads them: lower-case words only) in the first ``learn_edits`` edits, how many of them the writer made in two or
more of those edits, and, on the held-out edits, how many words of edit distance are changes already seen in the
learned edits (an upper bound on what any change-by-change rule learned from them could remove).

    python -m redline.evals.recurrence --learn-edits 10            # the shipped LAMP writers
    python -m redline.evals.recurrence --data evals/data/coauthor   # the CoAuthor writers
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from redline import text as tx
from redline.agent import edit_cost, word_diff

from .lamp import LAMP_DATA, load_writers

__all__ = ["changes", "recurrence", "main"]

def changes(draft: str, edited: str) -> list[tuple[str, str, int]]:
    """The edit's changes as ``(deleted, inserted, words)``: each deleted run with the run inserted in its place
    (either may be empty), normalised, and the words of edit distance it accounts for."""
    out, deleted = [], None
    for op, text in word_diff(draft, edited) + [("equal", "")]:
        if op == "delete":
            deleted = text
        elif op == "insert":
            out.append((tx.norm(deleted or ""), tx.norm(text), edit_cost(deleted or "", text)))
            deleted = None
        elif deleted is not None:
            out.append((tx.norm(deleted), "", edit_cost(deleted, "")))
            deleted = None
    return [c for c in out if c[0] != c[1]]


def recurrence(items: list[dict], learn_edits: int) -> dict:
    """One writer's figures: learned edits and their changes, changes made in two or more learned edits, held-out
    edit distance in words and the part of it that changes seen in the learned edits account for."""
    learned, held_out = items[:learn_edits], items[learn_edits:]
    seen_in = Counter()
    for x in learned:
        for change in {c[:2] for c in changes(x["preedit"], x["postedit"])}:
            seen_in[change] += 1
    distance = covered = edits_with_seen = 0
    for x in held_out:
        found = [c for c in changes(x["preedit"], x["postedit"]) if c[:2] in seen_in]
        distance += edit_cost(x["preedit"], x["postedit"])
        covered += sum(c[2] for c in found)
        edits_with_seen += bool(found)
    return {"learned_edits": len(learned), "learned_changes": len(seen_in),
            "repeated_changes": sorted(" -> ".join(c) for c, n in seen_in.items() if n >= 2),
            "held_out_edits": len(held_out), "held_out_distance": distance, "distance_in_seen_changes": covered,
            "held_out_edits_with_a_seen_change": edits_with_seen}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m redline.evals.recurrence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(LAMP_DATA), help="folder of LAMP-format edit files (default: LAMP)")
    parser.add_argument("--learn-edits", type=int, default=10, help="edits learned per writer (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    results = {w: recurrence(items, args.learn_edits) for w, items in load_writers(Path(args.data)).items()}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("| writer | learned edits: changes / made twice or more | held-out edits | held-out distance (words) "
              "| of it in changes seen before | edits with such a change |")
        print("|---|---|---|---|---|---|")
        for w, r in results.items():
            print(f"| {w} | {r['learned_edits']}: {r['learned_changes']} / {len(r['repeated_changes'])} "
                  f"| {r['held_out_edits']} | {r['held_out_distance']} | {r['distance_in_seen_changes']} "
                  f"| {r['held_out_edits_with_a_seen_change']} |")
    return results


if __name__ == "__main__":
    main()
