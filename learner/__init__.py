"""The learner role: a process that claims learning jobs from the store (inference, edit rules, the reward step) and
retrains the shared reward, beside the API processes that accept the edits. ``redline worker`` runs one;
``redline serve`` starts and supervises one.

Imports ``agent`` (and ``runtime``), never ``api``.
"""

from .metrics import LearnerMetrics
from .process import learner_agent, run_learner
from .worker import LearningWorker

__all__ = ["LearningWorker", "LearnerMetrics", "learner_agent", "run_learner"]
