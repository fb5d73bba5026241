"""The deployment gate's API: gate policies, a batch's gate (checks and decisions), decisions, releases and the audit
log. Views parse and delegate to evaluation.services.gate (writes) and evaluation.selectors_gate (reads); who may
decide or release is the service's rule, so that the admin and `manage.py release` answer alike."""

import json

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.authz import Action, check, project_for
from evaluation.models import GateDecision
from evaluation.selectors_gate import (
    AUDIT_COLUMNS,
    decision_row,
    evaluation_batch_gate,
    project_audit,
    project_gate_policies,
    project_releases,
    release_row,
)
from evaluation.selectors_results import evaluation_batch_for
from evaluation.services.gate import gate_decide, gate_policy_create, policy_as_dict, release
from rewards.apis import FORMAT_PARAMETER, TABLE_OBJECT, _LeadTableApi


class ProjectGatePoliciesApi(APIView):
    class InputSerializer(serializers.Serializer):
        min_win_rate_lower = serializers.FloatField(required=False, allow_null=True)
        max_red_team_failure = serializers.FloatField(required=False, allow_null=True)
        min_stratum_win_rate = serializers.FloatField(required=False, allow_null=True)
        min_judgments = serializers.IntegerField(required=False, allow_null=True)
        max_reward_length_spearman = serializers.FloatField(required=False, allow_null=True)
        blocking_flags = serializers.ListField(child=serializers.CharField(), required=False)
        note = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(responses=TABLE_OBJECT)
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_RELEASES, project_id=project_id, what="see gate policies"
        )
        return Response(project_gate_policies(project=project))

    @extend_schema(
        request=InputSerializer,
        responses={201: TABLE_OBJECT},
        description="Writes the project's next gate policy version (invalid_gate_policy: 400).",
    )
    def post(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.MANAGE_GATE, project_id=project_id, what="write gate policies"
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = gate_policy_create(project=project, values=dict(serializer.validated_data), created_by=request.user)
        return Response(policy_as_dict(policy), status=status.HTTP_201_CREATED)


def _evaluation_batch(request, evaluation_batch_id: int, action: Action, what: str):
    eb = evaluation_batch_for(evaluation_batch_id=evaluation_batch_id)
    if eb is None:
        raise Http404("Not found.")
    check(user=request.user, action=action, project=eb.batch.project_id, what=what)
    return eb


class EvaluationBatchGateApi(APIView):
    @extend_schema(responses=TABLE_OBJECT)
    def get(self, request, evaluation_batch_id: int):
        eb = _evaluation_batch(request, evaluation_batch_id, Action.VIEW_RELEASES, "see the gate")
        return Response(evaluation_batch_gate(evaluation_batch=eb))


class EvaluationBatchDecisionsApi(APIView):
    class InputSerializer(serializers.Serializer):
        verdict = serializers.ChoiceField(choices=GateDecision.Verdict.values)
        note = serializers.CharField(max_length=10_000)
        override_reason = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")

    @extend_schema(
        request=InputSerializer,
        responses={201: TABLE_OBJECT},
        description="A reviewer's approve or reject. Refused: not_allowed, conflict_of_interest (403); "
        "no_gate_policy, evaluation_unfinished, not_a_checkpoint, gate_failed with `failing` (409).",
    )
    def post(self, request, evaluation_batch_id: int):
        eb = _evaluation_batch(request, evaluation_batch_id, Action.VIEW_RELEASES, "record gate decisions")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        decision = gate_decide(
            evaluation_batch=eb,
            reviewer=request.user,
            verdict=data["verdict"],
            note=data["note"],
            override_reason=data.get("override_reason", ""),
        )
        return Response(decision_row(decision), status=status.HTTP_201_CREATED)


class DecisionReleaseApi(APIView):
    @extend_schema(
        request=None,
        responses={201: TABLE_OBJECT},
        description="Releases the decision's checkpoint. Refused: not_allowed, conflict_of_interest (403); "
        "not_approved, already_released, decision_superseded (409).",
    )
    def post(self, request, decision_id: int):
        decision = (
            GateDecision.objects.select_related("evaluation_batch__batch", "evaluation_batch__candidate__run", "policy")
            .filter(pk=decision_id)
            .first()
        )
        if decision is None:
            raise Http404("Not found.")
        check(user=request.user, action=Action.VIEW_RELEASES, project=decision.project_id, what="release")
        made = release(decision=decision, released_by=request.user)
        return Response(release_row(made), status=status.HTTP_201_CREATED)


class ProjectReleasesApi(APIView):
    @extend_schema(responses=TABLE_OBJECT)
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_RELEASES, project_id=project_id, what="see releases"
        )
        return Response(project_releases(project=project))


class ProjectAuditApi(_LeadTableApi):
    @extend_schema(parameters=[FORMAT_PARAMETER], responses=TABLE_OBJECT)
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_RELEASES, project_id=project_id, what="see the audit log"
        )
        events = project_audit(project=project)
        if not self._as_csv(request):
            return Response(events)
        rows = [{**e, "payload": json.dumps(e["payload"], sort_keys=True)} for e in events]
        return self._csv(rows, f"audit-project-{project.pk}.csv", columns=AUDIT_COLUMNS)
