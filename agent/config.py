"""Configuration: one typed settings object, read from ``REDLINE_*`` environment variables.

CLI flags override individual fields (``Settings(**overrides)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REDLINE_", extra="ignore")

    data_dir: Path = Field(Path.home() / ".redline", description="Where the store, models and checkpoints live.")
    database_url: str | None = Field(
        None, description="The store: a postgresql:// URL of the database several API processes and learners share "
                          "(on several hosts); unset: SQLite in the data directory.")
    database_pool_size: int = Field(8, ge=1, le=256, description="PostgreSQL: connections each process keeps in its "
                                                                 "pool (at most).")
    generator: Literal["llama-server", "transformers", "openai", "vllm"] = Field(
        "llama-server",
        description="Generator back-end: llama.cpp's server on the shipped GGUF (a child process unless "
                    "generator_url names a running one), in-process transformers, any OpenAI-compatible server, or "
                    "in-process vLLM.")
    generator_url: str | None = Field(
        None, description="llama-server: the base URL of a running llama-server to attach to (unset: start one); "
                          "openai: the server's base URL (unset: http://127.0.0.1:8000/v1).")
    generator_model: str | None = Field(
        None, description="llama-server: a packaged model's short name (qwen2.5-coder-0.5b, the default, or smollm2) "
                          "or a .gguf file; transformers/vllm: a short name or a local model folder; openai: the "
                          "served model's name (default: the first one the server lists).")
    generator_slots: int = Field(4, ge=1, le=64, description="llama-server: sequences decoded together (parallel "
                                                             "slots): best-of-n candidates and concurrent requests.")
    generator_context: int = Field(16384, ge=512, description="llama-server: context tokens over all slots (each "
                                                              "slot gets context / slots).")
    generator_threads: int | None = Field(None, ge=1, description="llama-server: CPU threads (default: every core "
                                                                  "but one).")
    loop_guard: Literal["cut", "off"] = Field(
        "cut", description="Degenerate repetition: cut a draft at its first repeated sentence (a streamed draft "
                           "stops decoding there and never shows the repeat); off: keep drafts as generated.")
    generator_background_wait: float = Field(
        30.0, ge=0, description="Longest a background generation (learning's inference) waits for the generator to "
                                "finish serving requests before it runs beside them.")
    generator_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="transformers: precision; auto = bfloat16 on CPUs with native bf16 (AVX-512 BF16/AMX), "
                            "else float32.")
    generator_api_key: str = Field("EMPTY", description="API key sent to the OpenAI-compatible server.")
    generator_timeout: float = Field(120.0, gt=0, description="Seconds before a generator request times out.")
    generator_retries: int = Field(2, ge=0, description="Retries (with backoff) for a failed generator request.")
    embedding_model: Path | None = Field(
        None, description="sentence-transformers folder; default: packaged all-MiniLM-L6-v2.")
    embedding_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Embedder precision; auto = bfloat16 on CPUs with native bf16 (AVX-512 BF16/AMX), "
                            "else float32.")
    k: int = Field(5, ge=1, le=50, description="CIPHER: how many nearest past contexts to retrieve.")
    aggregation: Literal["vote", "llm"] = Field(
        "vote", description="CIPHER: how the retrieved preferences become the one the prompt asks for. vote: the "
                            "items more than half of them name, else the nearest context's preference (no generator "
                            "call); llm: the generator combines them (the paper's way; a small generator often "
                            "writes content or mixes sources' lines instead, and the vote stands in only when its "
                            "answer is unusable).")
    vote_margin: float = Field(
        0.1, ge=0.0, le=2.0, description="CIPHER with aggregation=vote: retrieved contexts whose cosine similarity is "
                                         "more than this below the nearest one's do not vote (on topic-diverse "
                                         "documents most of the k nearest are another kind of text, with another "
                                         "preference); 0 = the nearest context's preference alone, 2 = all k vote.")
    keep_min_similarity: float = Field(
        0.25, ge=0.0, le=1.0, description="An edit also teaches the parts of the draft's preference that its kept "
                                          "text still does, when that preference came from a past context at least "
                                          "this similar (cosine): one from another kind of text is not the user's for "
                                          "being left alone (measured: 0.80-0.85 of generations whose nearest context "
                                          "is of their kind reach 0.25, 0-0.11 of the others); 1 = never.")
    delta: int = Field(0, ge=0, description="Edits whose word-level cost is at or below this count as 'no edit'.")
    max_tokens: int = Field(192, ge=1, le=8192, description="Default maximum tokens per generated text.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Default sampling temperature (0 = greedy).")
    max_text_chars: int = Field(20_000, ge=1, description="Longest context or edited text accepted, in characters.")
    context_chars_in_prompt: int = Field(4_000, ge=200, description="Context characters shown to the generator.")
    index_cache_users: int = Field(256, ge=1, description="Per-user FAISS indexes kept in memory.")
    seed: int | None = Field(None, description="Sampling seed for reproducible generations.")
    log_text: bool = Field(False, description="Write users' texts (contexts, preferences) into INFO log lines; "
                                              "for debugging only (by default log lines carry ids and lengths).")
    # -- HTTP server (api/) --
    auth: bool = Field(True, description="Require a Bearer API key on /v1 routes; false only for local use "
                                         "(every request then acts in tenant 'default').")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest HTTP request body accepted, in bytes.")
    max_request_tokens: int = Field(2048, ge=1, le=8192, description="Largest max_tokens one HTTP request may ask for.")
    retry_after_seconds: int = Field(10, ge=1, description="Retry-After sent with 503 when the generator is down; "
                                                          "also the learner's back-off.")
    maintenance_interval: float = Field(300.0, gt=0, description="Seconds between the learner's checks for a due "
                                                                 "reward retraining.")
    secure_cookies: bool = Field(False, description="Always mark the inspector's session cookie Secure (sent over "
                                                    "HTTPS only), whatever the request came over.")
    trust_proxy_headers: bool = Field(False, description="Believe a proxy's X-Forwarded-Proto: https (the client "
                                                         "came over HTTPS), so the session cookie is Secure; only "
                                                         "when every request reaches this server through that proxy.")
    # -- the learner (learner/) --
    learner_nice: int = Field(10, ge=0, le=19, description="CPU niceness of a learner process: above 0, the API "
                                                           "processes on its machine get the CPU first and the "
                                                           "learner what they leave (0: an equal share).")
    job_lease_seconds: float = Field(60.0, ge=1.0, description="How long a learner's claim on a job lasts without "
                                                              "renewal (renewed every third of it while it works); a "
                                                              "learner that dies leaves its jobs to others after it.")
    learn_max_attempts: int = Field(8, ge=1, le=100, description="Attempts at learning one edit before its job is "
                                                                 "parked (kept, retried when the generator answers "
                                                                 "again or on command).")
    learn_retry_max_seconds: float = Field(21600.0, ge=1.0, description="Longest back-off between two attempts at "
                                           "learning one edit (they start at 30 s and grow fourfold, ±20% jitter).")
    learn_retry_seconds: float = Field(30.0, gt=0, description="While jobs wait because the generator failed, the "
                                                              "learner checks this often whether it answers again "
                                                              "(a one-token call) and, if so, queues them again.")

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (unset: SQLite in the data directory)")
        return value or None

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def store_path(self) -> Path:
        return self.data_dir / "redline.db"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    # -- the reward and selection (policies/) --
    reward_heads: int = Field(4, ge=1, le=64, description="Reward heads: K ideal points of the shared edit profile "
                                                         "(MiCRo stage 1; 1 = one population ideal point).")
    reward_tau: float = Field(1.0, gt=0, description="Temperature of the per-user online routing (Hedge) step.")
    reward_mode: Literal["profile", "mixture"] = Field(
        "profile", description="How a user's reward scores candidates: profile (the user's own ideal point, shrunk "
                               "towards their routed heads, plus the edit head) or mixture (MiCRo's head mixture).")
    reward_router: bool = Field(False, description="Train a context router over the heads (from the contexts' "
                                                   "embeddings, stored with each pair); off: it changed no measured "
                                                   "figure and costs most of a retraining.")
    reward_retrain_every: int = Field(20, ge=1, description="Retrain the shared reward once this many new "
                                                            "preference pairs arrived since the last checkpoint.")
    reward_n: int = Field(4, ge=1, le=16, description="Candidates per request for best_of_n and rps (default for n).")
    reward_candidates: Literal["samples", "revisions"] = Field(
        "revisions", description="Alternatives to the greedy draft: samples of the task prompt (scored on form "
                                 "features) or revisions of the greedy draft (one more generator call; all features).")
    reward_candidate_temperature: float = Field(
        0.8, gt=0.0, le=2.0, description="Sampling temperature of the alternatives, also when the request's is 0.")
    reward_seed: int = Field(0, description="Seed for training the reward.")
    reward_min_pairs: int = Field(
        8, ge=0, description="best_of_n / rps draft alternatives only for a user whose reward state holds at least "
                             "this many of their own pairs; before that, the greedy target draft alone (no price for "
                             "exploring before the reward has evidence).")
    reward_min_confidence: float = Field(
        0.6, ge=0.5, lt=1.0, description="The reward replaces the greedy target draft only by a candidate it expects "
                                         "the user to prefer with a probability above this (0.5: any better score).")

    # -- learned edit rules (agent/rules.py) --
    rules: bool = Field(True, description="Learn edit rules from users' edits and apply each user's active rules to "
                                          "their drafts; false turns both off server-wide.")
    rules_min_support: int = Field(2, ge=1, description="Edits that must have made a rule's fix before it is active.")
    rules_min_precision: float = Field(0.8, ge=0.0, le=1.0, description="Share of the edits that offered the chance "
                                       "in which the user made the fix, at least, for a rule to be active.")
    rules_local_chance: float = Field(0.05, gt=0.0, le=1.0, description="A rule not active over all of a user's "
                                      "edits applies among the nearest contexts only if its support there would be "
                                      "this unlikely by chance, given the user's overall precision.")
    rules_scope: bool = Field(True, description="A rule with the support to be active but not the precision also "
                              "applies where a linear classifier of the contexts of its evidence (fix made or not) "
                              "expects the fix: a fix the user makes on one kind of text the nearest contexts miss.")
    rules_scope_min_support: int = Field(1, ge=1, description="Edits that must have made the fix of a rule that "
                                         "shapes the whole text (a frame line, a format, a length) before its scope "
                                         "may apply it (rules_scope); word choices (replace or delete a phrase) "
                                         "need rules_min_support, as writers make one-off word changes all the "
                                         "time.")
    rules_history: int = Field(200, ge=0, le=10_000, description="A newly mined (or rewritten) rule is counted over "
                                                                 "the user's last this many edits.")
    rules_prune_after: int = Field(50, ge=1, description="A mined rule with one supporting edit is forgotten once "
                                                         "this many later edits gave it no chance to show again.")

    @property
    def rewards_dir(self) -> Path:
        return self.data_dir / "rewards"

