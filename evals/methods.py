"""The compared methods, each a way of calling the agent (never a re-implementation of one).

| name | generate with | after the user's edit |
|---|---|---|
| ``no-learning`` | no preference, no retrieval | record the edit only |
| ``oracle`` | the user's true description | record the edit only |
| ``icl-edit-K`` | the K nearest past (draft, edit) pairs as in-context examples | record the edit only |
| ``cipher-K`` | CIPHER with k=K (retrieve, the generator aggregates) | learn (infer and store a preference) |
| ``redline`` / ``redline-rps`` | CIPHER k=5 + RPS selection (``strategy="rps"``) + the user's edit rules | learn |
| ``redline-best_of_n`` | CIPHER k=5 + best-of-n selection + edit rules | learn |
| ``redline-no-rules`` | CIPHER k=5 + RPS selection, no edit rules (the ablation) | learn (no rules) |
| ``rules-only`` | no preference in the prompt; the user's edit rules (active among the k=5 nearest contexts) | learn |

Every CIPHER-based method but ``cipher-K`` combines the retrieved preferences by vote (``Settings.aggregation``, the
server's default); ``cipher-K`` lets the generator combine them, as the paper does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Method", "parse_method", "parse_methods"]

_NAME = re.compile(r"^(no-learning|oracle|icl-edit-(\d+)|cipher-(\d+)|redline(?:-(rps|best_of_n|no-rules))?"
                   r"|rules-only)$")


@dataclass(frozen=True)
class Method:
    name: str
    k: int = 5  # Settings.k for CIPHER-based methods
    use_retrieval: bool = True
    oracle: bool = False
    icl_k: int = 0
    strategy: str = "greedy"
    n: int | None = None
    learns: bool = False
    rules: bool = False  # learn and apply edit rules (agent setting ``rules``; request option ``rules``)
    use_preference: bool = True  # the learned preference goes into the prompt
    aggregation: str = "vote"  # Settings.aggregation: cipher-K combines with the generator, as the paper does

    @property
    def infers_preferences(self) -> bool:
        return self.learns or self.oracle


def parse_method(name: str, *, n: int = 4) -> Method:
    """A ``Method`` from its CLI name; unknown names raise ``ValueError``.

    >>> parse_method("cipher-5").k
    5
    """
    m = _NAME.match(name.strip())
    if not m:
        raise ValueError(f"unknown method {name!r}; use no-learning, oracle, icl-edit-K, cipher-K, redline, "
                         "redline-rps, redline-best_of_n, redline-no-rules or rules-only")
    if name == "no-learning":
        return Method(name, use_retrieval=False)
    if name == "oracle":
        return Method(name, use_retrieval=False, oracle=True)
    if m.group(2):
        k = int(m.group(2))
        if k < 1:
            raise ValueError(f"method {name!r}: K must be at least 1")
        return Method(name, use_retrieval=False, icl_k=k)
    if m.group(3):
        k = int(m.group(3))
        if not 1 <= k <= 50:
            raise ValueError(f"method {name!r}: K must be in [1, 50]")
        return Method(name, k=k, learns=True, aggregation="llm")
    if name == "rules-only":
        return Method(name, k=5, learns=True, rules=True, use_preference=False)
    if m.group(4) == "no-rules":
        return Method(name, k=5, strategy="rps", n=n, learns=True)
    return Method(name, k=5, strategy=m.group(4) or "rps", n=n, learns=True, rules=True)


def parse_methods(text: str, *, n: int = 4) -> list[Method]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError("no methods given")
    if len(set(names)) != len(names):
        raise ValueError("a method is listed twice")
    return [parse_method(s, n=n) for s in names]

