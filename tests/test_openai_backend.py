import json
import socket

import httpx
import pytest

from redline.agent import GenerationParams, GeneratorUnavailable
from redline.agent.generators.openai_backend import OpenAIGenerator


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/models"):
        return httpx.Response(200, json={"data": [{"id": "tiny"}]})
    body = json.loads(request.content)
    prompt = body["messages"][-1]["content"]
    choices = [{"index": i, "message": {"role": "assistant", "content": f" {prompt}#{i} "}} for i in range(body["n"])]
    return httpx.Response(200, json={"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": 7}})


def test_generate_batches_and_parses():
    gen = OpenAIGenerator("http://server/v1", transport=httpx.MockTransport(handler))
    assert gen.model_name == "tiny"
    out = gen.generate([[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]],
                       GenerationParams(n=2, seed=1, stop=("\n",)))
    assert [g.texts for g in out] == [["a#0", "a#1"], ["b#0", "b#1"]]
    assert out[0].prompt_tokens == 5 and out[0].completion_tokens == 7


def test_retries_then_clear_error_on_server_errors():
    calls = []

    def failing(request):
        calls.append(1)
        return httpx.Response(503, text="overloaded")

    gen = OpenAIGenerator("http://server/v1", "m", retries=2, backoff=0, transport=httpx.MockTransport(failing))
    with pytest.raises(GeneratorUnavailable, match="http://server/v1 is unreachable or failing"):
        gen.generate([[{"role": "user", "content": "a"}]], GenerationParams())
    assert len(calls) == 3


def test_unreachable_server_is_generator_unavailable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0, timeout=2)
    with pytest.raises(GeneratorUnavailable, match="unreachable"):
        gen.generate([[{"role": "user", "content": "a"}]], GenerationParams())


def test_params_validate_themselves():
    with pytest.raises(ValueError, match="n must be"):
        GenerationParams(n=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=3)
    with pytest.raises(ValueError, match="max_tokens"):
        GenerationParams(max_tokens=0)


def test_a_busy_server_is_retried_and_a_rejected_request_is_not():
    calls = []

    def busy_once(request):
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(429, text="slow down")
        return handler(request)

    gen = OpenAIGenerator("http://server/v1", "m", retries=2, backoff=0, transport=httpx.MockTransport(busy_once))
    assert gen.generate([[{"role": "user", "content": "a"}]], GenerationParams())[0].texts == ["a#0"]
    assert len(calls) == 2
    rejected = OpenAIGenerator("http://server/v1", "m", retries=2, backoff=0,
                               transport=httpx.MockTransport(lambda r: calls.append(1) or httpx.Response(400)))
    with pytest.raises(GeneratorUnavailable, match=r"rejected the request \(400\)"):
        rejected.generate([[{"role": "user", "content": "a"}]], GenerationParams())
    assert len(calls) == 3  # a 400 is not retried
