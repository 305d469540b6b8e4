"""Vendor real writers' edits of language-model drafts from CoAuthor into the replay's format.

CoAuthor (Lee, Liang & Yang, CHI 2022; https://coauthor.stanford.edu, CC BY-SA 4.0) logged 1445 writing sessions
of 63 crowd writers, keystroke by keystroke, each with GPT-3 suggestions the writer could accept and then edit.
Replaying a session's text deltas, every character of the document carries where it came from (the prompt, the
writer, or the k-th accepted suggestion); at the end, an accepted suggestion's *kept* text is the span from its
first to its last surviving character (with whatever the writer typed inside it, and the rest of a word the writer
retyped at either end); a suggestion of which less than 30% survives was replaced, not revised, and one with another
suggestion inside it is left out. A suggestion the writer kept with changes (more than the mark at its end, which a
writer who goes on writing turns into a comma) is one (draft, kept) pair of that writer, in the replay's LAMP
format: ``{"id", "instruction", "source", "type", "preedit", "postedit", "session", "prompt_code"}``.

    python scripts/vendor_coauthor.py SESSIONS_DIR [--writers 3] [--per-writer 50]

``SESSIONS_DIR`` holds ``creative/*.jsonl``, ``argumentative/*.jsonl`` (CoAuthor's session logs) and
``creative.csv``/``argumentative.csv`` (``worker_id,session_id,prompt_code,...``); the copy this project used is
``static/import_dataset/`` of github.com/Visual-Intelligence-UMN/Ink-Pulse (see evals/data/SOURCES.md). Writes
``evals/data/coauthor/<writer>_edits.json`` for the writers with the most edited suggestions, each
file the writer's first ``--per-writer`` pairs in session and time order; deterministic.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "evals" / "data" / "coauthor"
MIN_WORDS = 4  # a suggestion shorter than this says little about how its writer edits
MIN_SURVIVING = 0.3  # of a suggestion's characters (not spaces) still there: less is the writer's own text


def replay(events: list[dict]) -> tuple[str, list[tuple[str, str]]]:
    """The session's final text and ``[(suggestion as inserted, what the writer kept of it), ...]`` in the order
    the suggestions were accepted (kept is "" when the writer deleted all of it)."""
    doc: list[tuple[str, object]] = []
    inserted: list[str] = []
    for e in events:
        if e["eventName"] == "system-initialize":
            doc = [(ch, "prompt") for ch in e.get("currentDoc") or ""]
        delta = e.get("textDelta")
        if not isinstance(delta, dict):
            continue
        tag: object = "writer"
        if e["eventName"] == "text-insert" and e["eventSource"] == "api":  # the accepted suggestion goes in
            tag = len(inserted)
            inserted.append("".join(op["insert"] for op in delta["ops"] if isinstance(op.get("insert"), str)))
        at = 0
        for op in delta["ops"]:
            if "retain" in op:
                at += op["retain"]
            elif "delete" in op:
                del doc[at:at + op["delete"]]
            elif isinstance(op.get("insert"), str):
                doc[at:at] = [(ch, tag) for ch in op["insert"]]
                at += len(op["insert"])
    text = "".join(ch for ch, _ in doc)
    kept = []
    for k, draft in enumerate(inserted):
        where = [i for i, (ch, t) in enumerate(doc) if t == k and not ch.isspace()]
        solid = sum(not ch.isspace() for ch in draft)
        if len(where) < MIN_SURVIVING * solid:  # deleted, or replaced by the writer's own text: no revision of it
            kept.append((draft, ""))
            continue
        start, end = where[0], where[-1] + 1
        while start > 0 and doc[start - 1][1] == "writer" and not doc[start - 1][0].isspace():  # a retyped word
            start -= 1
        while end < len(doc) and doc[end][1] == "writer" and not doc[end][0].isspace():
            end += 1
        if any(isinstance(t, int) and t != k for _, t in doc[start:end]):  # another suggestion went inside it
            kept.append((draft, ""))
            continue
        kept.append((draft, text[start:end]))
    return text, kept


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _bare(text: str) -> str:
    """The text without the marks at its ends: a full stop turned comma is no revision of the sentence."""
    return re.sub(r"^\W+|\W+$", "", text)


def pairs_of(folder: Path) -> dict[str, list[dict]]:
    """Every writer's edited suggestions, in the order of their sessions (by time) and of acceptance."""
    writers: dict[str, list[dict]] = defaultdict(list)
    for kind in ("creative", "argumentative"):
        with (folder / f"{kind}.csv").open(newline="", encoding="utf-8") as fh:
            sessions = list(csv.DictReader(fh))
        for row in sessions:
            path = folder / kind / f"{row['session_id']}.jsonl"
            if not path.exists():
                continue
            events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            first = next((e for e in events if e["eventName"] == "system-initialize"), None)
            prompt = _clean(first.get("currentDoc") or "") if first else ""
            started = events[0]["eventTimestamp"] if events else 0
            _, kept = replay(events)
            for k, (draft, edit) in enumerate(kept):
                draft, edit = _clean(draft), _clean(edit)
                if not edit or len(draft.split()) < MIN_WORDS or _bare(edit) == _bare(draft):
                    continue  # deleted, too short, or only its end mark changed as the writer went on writing
                writers[row["worker_id"]].append({
                    "started": started, "k": k, "session": row["session_id"], "prompt_code": row["prompt_code"],
                    "type": kind, "instruction": prompt, "source": "gpt3 (CoAuthor)", "preedit": draft,
                    "postedit": edit})
    for items in writers.values():
        items.sort(key=lambda x: (x["started"], x["k"]))
    return writers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sessions", type=Path)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--per-writer", type=int, default=50)
    args = parser.parse_args()
    writers = pairs_of(args.sessions)
    ranked = sorted(writers, key=lambda w: (-len(writers[w]), w))
    print({w: len(writers[w]) for w in ranked[:10]})
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*_edits.json"):
        old.unlink()
    for writer in ranked[:args.writers]:
        rows = [{"id": f"{writer}_{i + 1}", **{k: v for k, v in x.items() if k not in ("started", "k")}}
                for i, x in enumerate(writers[writer][:args.per_writer])]
        (OUT / f"{writer}_edits.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        print(writer, len(rows))


if __name__ == "__main__":
    main()
