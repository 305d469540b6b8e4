"""POST /v1/generate: a personalized response for one user."""

from fastapi import APIRouter

from redline.agent import GenerateOptions

from ..bodies import JsonRoute
from ..deps import AgentDep, MetricsDep, SettingsDep, TenantDep
from ..schemas import GenerateRequest, GenerateResponse, Usage
from ._common import check_max_tokens, errors

router = APIRouter(tags=["generate"], route_class=JsonRoute)


@router.post("/v1/generate", response_model=GenerateResponse, responses=errors(503))
def generate(body: GenerateRequest, agent: AgentDep, tenant: TenantDep, settings: SettingsDep,
             metrics: MetricsDep) -> GenerateResponse:
    """Write a response for `user` on `context`, shaped by the preferences learned from the user's past
    edits on similar contexts and fixed by the user's learned edit rules. Returns the text, the interaction id
    to post the edit to, the preference used, the neighbours it came from and the rules applied. `503` with
    `Retry-After` when the generator is down."""
    max_tokens = check_max_tokens(body.max_tokens, settings)
    options = GenerateOptions(strategy=body.strategy, n=body.n, max_tokens=max_tokens, temperature=body.temperature,
                              seed=body.seed, rules=body.rules, use_preference=body.use_preference)
    result = agent.generate(body.user, body.context, body.task, options, tenant=tenant)
    metrics.observe_generation(result)
    return GenerateResponse(
        interaction_id=result.interaction_id, user=result.user, task=result.task, text=result.text,
        preference=result.preference, neighbours=result.neighbours, strategy=result.strategy,
        candidates=result.candidates, selection=result.selection, model=result.model,
        usage=Usage.of(result), timings_ms=result.timings_ms, applied_rules=result.applied_rules)
