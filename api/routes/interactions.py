"""The edit of one interaction, and what became of it: ``POST /v1/interactions/{id}/edit`` stores the user's
kept text (a learner process learns from it), ``GET /v1/interactions/{id}`` shows the learning status, and
``POST /v1/learning/retry`` queues again the edits whose learning failed."""

from typing import Annotated

from fastapi import APIRouter, Path

from ..bodies import JsonRoute
from ..deps import AgentDep, MetricsDep, TenantDep
from ..schemas import EditRequest, EditResponse, InteractionResponse, LearningRetryResponse
from ._common import errors

router = APIRouter(tags=["learn"], route_class=JsonRoute)
InteractionId = Annotated[str, Path(max_length=64, description="From /v1/generate or a chat completion's "
                                                               "interaction_id.")]


@router.post("/v1/interactions/{interaction_id}/edit", status_code=202, response_model=EditResponse,
             responses=errors(404, 409))
def submit_edit(interaction_id: InteractionId, body: EditRequest, agent: AgentDep, tenant: TenantDep,
                metrics: MetricsDep) -> EditResponse:
    """Accept the text as the user kept it. It is stored durably (with its learning job) before the `202`;
    preference inference and indexing run in a learner process, exactly once. The same text again is accepted
    idempotently (`created: false`); a different text for an interaction already edited is `409`."""
    receipt = agent.submit_edit(interaction_id, body.edited_text, tenant=tenant)
    metrics.edits.labels("accepted" if receipt.created else "duplicate").inc()
    return EditResponse(interaction_id=receipt.interaction_id, cost=receipt.cost, is_edit=receipt.is_edit,
                        created=receipt.created)


@router.get("/v1/interactions/{interaction_id}", response_model=InteractionResponse, responses=errors(404))
def get_interaction(interaction_id: InteractionId, agent: AgentDep, tenant: TenantDep) -> InteractionResponse:
    """One interaction: the text generated, the user's edit once posted, and `learning`: whether the edit was
    learned yet (`status`) and the preference stored from it. Poll this after posting an edit to know when
    the next generation for the user already reflects it."""
    return InteractionResponse(**agent.interaction(interaction_id, tenant=tenant))


@router.post("/v1/learning/retry", response_model=LearningRetryResponse, responses=errors())
def retry_learning(agent: AgentDep, tenant: TenantDep) -> LearningRetryResponse:
    """Queue again, at once, your tenant's edits whose learning failed: parked ones (every attempt failed) and ones
    waiting out a back-off; their attempts start again from zero. Parked edits the generator failed are also
    retried by the learner as soon as the generator answers again; this is for the rest, or for not waiting."""
    return LearningRetryResponse(requeued=agent.retry_learning(tenant=tenant))
