"""Evaluation harness: PRELUDE-style tasks, simulated users (rule-based or LLM), baselines, reports.

The harness drives ``agent.Agent`` (or a running server over HTTP); no method is re-implemented here.
"""

from .harness import EvalConfig, run_eval
from .methods import Method, parse_methods
from .report import write_report
from .users import LLMUser, RuleUser, load_user_specs

__all__ = ["EvalConfig", "run_eval", "Method", "parse_methods", "write_report", "RuleUser", "LLMUser",
           "load_user_specs"]
