"""Request bodies without a server (issue 16.1 and 16.6): every request model and each part of one checks every
string it holds for lone surrogates (unknown fields too), and every boolean is strict."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from redline.api import schemas
from redline.api.schemas import RequestBody

REQUEST_MODELS = [m for m in vars(schemas).values() if isinstance(m, type) and issubclass(m, RequestBody)
                  and m is not RequestBody]


def _errors(model, data) -> list[dict]:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return exc.errors()
    return []


def test_every_model_a_request_body_uses_is_a_request_body(tmp_path):
    from redline.agent import Settings
    from redline.api.app import create_app

    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    refs, pending = set(), [op["requestBody"] for path in spec["paths"].values() for op in path.values()
                            if "requestBody" in op]
    while pending:  # every component a request body reaches, however deep
        node = pending.pop()
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"] not in refs:
                refs.add(node["$ref"])
                pending.append(spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    names = {ref.rsplit("/", 1)[1] for ref in refs} - {"PlainJson"}  # the schema of unknown fields, no model
    assert names == {m.__name__ for m in REQUEST_MODELS}
    assert {"ChatRequest", "ChatMessage", "ContentPart", "StreamOptions", "GenerateRequest"} <= names


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
def test_a_lone_surrogate_in_any_field_is_rejected(model):
    for name in model.model_fields:
        errors = _errors(model, {name: "ok \ud800"})
        assert any(e["loc"][:1] == (name,) for e in errors), (model.__name__, name, errors)
    if model.model_config.get("extra") == "allow":
        for unknown in ("\udfff", {"deep": ["ok", {"k\ud800": 1}]}):
            errors = _errors(model, {"unknown": unknown})
            assert {"type": "lone_surrogate", "loc": ("unknown",)} in [
                {k: e[k] for k in ("type", "loc")} for e in errors], errors


def test_the_check_is_iterative_so_deep_nesting_cannot_exhaust_the_stack():
    deep: list = ["\ud800"]
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(Exception, match="no lone surrogates"):
        schemas.reject_lone_surrogates(deep)


def test_every_boolean_field_is_strict():
    checked = set()
    for model in REQUEST_MODELS:
        for name, field in model.model_fields.items():
            if bool not in (field.annotation, *typing.get_args(field.annotation)):
                continue
            for not_a_bool in ("yes", "true", 1, 0, "1"):
                errors = _errors(model, {name: not_a_bool})
                assert any(e["loc"] == (name,) and e["type"] == "bool_type" for e in errors), (name, not_a_bool)
            assert not [e for e in _errors(model, {name: True}) if e["loc"] == (name,)]
            checked.add(f"{model.__name__}.{name}")
    assert {"ChatRequest.stream", "StreamOptions.include_usage"} <= checked
