"""Rebuild ``evals/data/`` from the shared public samples (run once by a developer, not at run time).

    .venv/bin/python scripts/vendor_eval_data.py ../shared/data
    .venv/bin/python scripts/vendor_eval_data.py --lamp-writer /tmp/W16_edits.json   # one more LAMP writer

Writes ``summarize.jsonl`` and ``email.jsonl`` (id, source, origin, text) and copies the LAMP edit files.
Selection is deterministic: the first documents of each source (by file order) within a length range.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "evals" / "data"
PER_SOURCE = 50


def detokenize(text: str) -> str:
    """Undo PTB-style tokenisation and restore sentence capitals (CNN/DM QAGS text)."""
    text = text.replace("` ", "'").replace("`", "'").replace("-lrb- ", "(").replace(" -rrb-", ")")
    text = re.sub(r" ([.,;:!?%)])", r"\1", text)
    text = re.sub(r"\( ", "(", text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r"\$ (\d)", r"$\1", text)
    text = re.sub(r"' ([^']*?) '", r"'\1'", text)
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    text = re.sub(r"\bi\b", "I", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("<br />", " ")).strip()


def _take(rows, n, lo=60, hi=700, skip=0):
    picked = [r for r in rows if lo <= len(r[1].split()) <= hi]
    return picked[skip:skip + n]


def main(shared: Path) -> None:
    src = shared / "sources"
    reddit = [json.loads(x) for x in (src / "reddit_tldr_test.jsonl").read_text().splitlines() if x.strip()]
    reddit = [(r["instruction_id"], _clean(r["title"] + "\n\n" + r["instruction"])) for r in reddit]
    cnn, seen = [], set()
    for r in json.loads((src / "cnndm_qags.json").read_text()):
        if r["doc_id"] not in seen:
            seen.add(r["doc_id"])
            cnn.append((f"qags-{r['doc_id']}", detokenize(r["source"])))
    iterater = []
    for name in ("iterater_doc_train.jsonl", "iterater_doc_dev.jsonl"):
        iterater += [json.loads(x) for x in (src / name).read_text().splitlines() if x.strip()]
    by_domain = {d: [(f"{r['doc_id']}", _clean(r["after_revision"])) for r in iterater if r.get("domain") == d]
                 for d in ("arxiv", "wiki", "news")}
    imdb = [json.loads(x) for x in (src / "imdb_test.jsonl").read_text().splitlines() if x.strip()]
    imdb = [(str(r["id"]), _clean(r["text"])) for r in imdb]
    origin = {
        "cnn": "CNN/DailyMail via UniEval qags_cnndm.json (MIT repo; articles: CNN/DailyMail)",
        "reddit": "Reddit TL;DR via Hritikbansal/dove data/tldr/test.json (MIT repo; posts: Reddit users)",
        "wiki": "Wikipedia documents from IteraTeR human_doc_level (Apache-2.0)",
        "arxiv": "arXiv abstracts from IteraTeR human_doc_level (Apache-2.0)",
        "news": "news documents from IteraTeR human_doc_level (Apache-2.0)",
        "imdb": "IMDb reviews via INK-USC/Lifelong-ICL data/imdb/test.jsonl (MIT repo; reviews: IMDb users)",
    }
    tasks = {
        # summarisation: the five PRELUDE sources (Simple-English Wikipedia -> IteraTeR Wikipedia)
        "summarize": [("news", "cnn", _take(cnn, PER_SOURCE, 150, 800)),
                      ("reddit", "reddit", _take(reddit, PER_SOURCE, 120, 600)),
                      ("wikipedia", "wiki", _take(by_domain["wiki"], PER_SOURCE, 150, 900)),
                      ("arxiv", "arxiv", _take(by_domain["arxiv"], PER_SOURCE, 80, 400)),
                      ("movie_review", "imdb", _take(imdb, PER_SOURCE, 100, 600))],
        # email: abstracts (no author highlights) -> IteraTeR arXiv; peer reviews -> IMDb reviews;
        # paper tweets -> IteraTeR news (short announcements); disjoint from the summarisation documents
        "email": [("paper_abstract", "arxiv", _take(by_domain["arxiv"], PER_SOURCE, 80, 400, skip=PER_SOURCE)),
                  ("reddit", "reddit", _take(reddit, PER_SOURCE, 60, 400, skip=PER_SOURCE)),
                  ("peer_review", "imdb", [r for r in imdb if r not in _take(imdb, PER_SOURCE, 100, 600)][:PER_SOURCE]),
                  ("paper_tweet", "news", _take(by_domain["news"], PER_SOURCE, 40, 250))],
    }
    OUT.mkdir(exist_ok=True)
    for task, sources in tasks.items():
        with (OUT / f"{task}.jsonl").open("w") as fh:
            for source, key, rows in sources:
                for doc_id, text in rows:
                    fh.write(json.dumps({"id": f"{source}-{doc_id}", "source": source, "origin": origin[key],
                                         "text": text}, ensure_ascii=False) + "\n")
            print(task, {s: len(r) for s, _, r in sources})
    for name in ("lamp_W3_edits.json", "lamp_W12_edits.json"):
        shutil.copyfile(shared / "edits" / name, OUT / name)


LAMP_FIELDS = ("id", "instruction", "source", "type", "preedit", "postedit", "fine_grained_edits")


def vendor_lamp_writer(raw: Path) -> Path:
    """One more LAMP reannotation writer (``W16_edits.json`` of salesforce/creativity_eval's
    ``Writing_Alignment/LAMP/reannotation/``) as ``lamp_W16_edits.json``, in the shipped writers' format: the
    human-written reference paragraph (``Human-Written``, not to be redistributed), its URL and the scores left out."""
    rows = [{k: r[k] for k in LAMP_FIELDS} for r in json.loads(raw.read_text(encoding="utf-8"))]
    out = OUT / f"lamp_{raw.name}"
    out.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return out


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--lamp-writer":
        # git -C MIRROR show HEAD:Writing_Alignment/LAMP/reannotation/W16_edits.json > /tmp/W16_edits.json
        print(vendor_lamp_writer(Path(sys.argv[2])))
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
