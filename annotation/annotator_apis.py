"""The annotator API (the contract in ARCHITECTURE.md). Nothing here names a model, side A, gold, or others' votes."""

import hashlib
import hmac
import re

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import AnnotationSession, Assignment, Project
from annotation.rules import DIMENSION_CHOICES, SIDE_CHOICES
from annotation.services.assignments import assignment_next_for
from annotation.services.judgments import judgment_choices, judgment_submit
from annotation.services.sessions import session_start

ErrorSerializer = inline_serializer(
    name="Error", fields={"code": serializers.CharField(), "detail": serializers.CharField()}
)


class SessionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnnotationSession
        fields = ["id", "expires_at", "max_tasks", "tasks_done"]


class SessionStartApi(APIView):
    @extend_schema(
        request=None,
        responses={
            201: SessionOutputSerializer,
            200: SessionOutputSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            429: OpenApiResponse(ErrorSerializer, description='{"code": "on_break", "retry_after": seconds}'),
        },
    )
    def post(self, request, project_id: int):
        project = get_object_or_404(Project, pk=project_id)
        session, created = session_start(project=project, annotator=request.user)
        return Response(
            SessionOutputSerializer(session).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class SessionDetailApi(APIView):
    @extend_schema(responses={200: SessionOutputSerializer, 404: ErrorSerializer})
    def get(self, request, session_id: int):
        session = get_object_or_404(AnnotationSession, pk=session_id, annotator=request.user)
        return Response(SessionOutputSerializer(session).data)


def _opaque_id(assignment: Assignment, side: str) -> str:
    """Stable per assignment and side, unrelated across assignments: reveals neither A/B nor the item."""
    message = f"{assignment.pk}:{side}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:16]


def next_payload(assignment: Assignment, project: Project) -> dict:
    item = assignment.item
    criteria = item.batch.criteria_version
    left, right = (item.response_a_text, item.response_b_text)
    if not assignment.left_is_a:
        left, right = right, left
    payload = {"assignment_id": str(assignment.pk)}
    if item.messages is not None:
        payload["messages"] = [{"role": m["role"], "content": m["content"]} for m in item.messages]
    else:
        payload["prompt"] = item.prompt
    payload.update(
        {
            "left": {"id": _opaque_id(assignment, "left"), "text": left},
            "right": {"id": _opaque_id(assignment, "right"), "text": right},
            "dimensions": [
                {"key": d.get("key"), "label": d.get("label", d.get("key")), "description": d.get("description", "")}
                for d in sorted(criteria.dimensions, key=lambda d: d.get("priority", 0))
            ],
            "criteria_version": criteria.number,
            "lease_expires_at": assignment.lease_expires_at,
            "choices": judgment_choices(project=project),
            "require_justification": project.require_justification,
        }
    )
    return payload


NextSerializer = inline_serializer(
    name="NextAssignment",
    fields={
        "assignment_id": serializers.UUIDField(),
        "prompt": serializers.CharField(required=False),
        "messages": serializers.ListField(child=serializers.DictField(), required=False),
        "left": inline_serializer(
            name="ShownResponse", fields={"id": serializers.CharField(), "text": serializers.CharField()}
        ),
        "right": inline_serializer(
            name="ShownResponse2", fields={"id": serializers.CharField(), "text": serializers.CharField()}
        ),
        "dimensions": serializers.ListField(child=serializers.DictField()),
        "criteria_version": serializers.IntegerField(),
        "lease_expires_at": serializers.DateTimeField(),
        "choices": serializers.ListField(child=serializers.CharField()),
        "require_justification": serializers.BooleanField(),
    },
)


class NextAssignmentApi(APIView):
    @extend_schema(
        responses={
            200: NextSerializer,
            204: OpenApiResponse(description="Nothing left to judge."),
            404: ErrorSerializer,
            410: OpenApiResponse(ErrorSerializer, description='{"code": "session_limit"}'),
        }
    )
    def get(self, request, session_id: int):
        session, assignment = assignment_next_for(session_id=session_id, annotator_id=request.user.pk)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(next_payload(assignment, session.project))


class JudgmentSubmitApi(APIView):
    class InputSerializer(serializers.Serializer):
        choice = serializers.ChoiceField(choices=SIDE_CHOICES)
        dimensions = serializers.DictField(
            child=serializers.ChoiceField(choices=DIMENSION_CHOICES), required=False, default=dict
        )
        justification = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=5000
        )  # _JUSTIFICATION_MAX

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment_id = serializers.UUIDField()
        choice = serializers.SerializerMethodField()
        created_at = serializers.DateTimeField()

        def get_choice(self, judgment) -> str:
            # Answer in the annotator's own terms (left/right): the stored A/B must not leak.
            shown_left = judgment.shown_left
            if judgment.choice in ("a", "b"):
                return "left" if judgment.choice == shown_left else "right"
            return judgment.choice

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            410: OpenApiResponse(ErrorSerializer, description="lease_expired, overlap_full or batch_closed"),
        },
    )
    def post(self, request, assignment_id):
        validated = _plain_judgment(request.data)
        if validated is None:  # anything else, errors included, is the serializer's to validate and answer
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            validated = serializer.validated_data
        judgment, created = judgment_submit(assignment_id=assignment_id, annotator_id=request.user.pk, **validated)
        return Response(_judgment_output(judgment), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


# The judgment endpoint is half the annotator loop's requests. Serializers copy their fields on every use, which
# cost more CPU than the checks: the common body (a JSON object with a choice, maybe dimensions and a justification,
# as the page sends it) is checked here,
# giving what InputSerializer's validated_data would, and the answer is OutputSerializer's, field by field.
# tests/annotation/test_annotator_api.py holds both to the serializers' contract.
_CREATED_AT = serializers.DateTimeField()
_ASSIGNMENT_ID = serializers.UUIDField()


def _plain_judgment(data) -> dict | None:
    """InputSerializer's validated_data for a plain valid body, or None to let the serializer decide."""
    if type(data) is not dict or not data.keys() <= {"choice", "dimensions", "justification"}:
        return None
    choice, dimensions = data.get("choice"), data.get("dimensions", {})
    if type(choice) is not str or choice not in SIDE_CHOICES or type(dimensions) is not dict:
        return None
    if any(type(v) is not str or v not in DIMENSION_CHOICES for v in dimensions.values()):
        return None
    justification = data.get("justification", "")
    if type(justification) is not str:
        return None
    # As the serializer's CharField: trimmed, at most 5,000 characters, no NUL and no lone surrogates.
    justification = justification.strip()
    if len(justification) > _JUSTIFICATION_MAX or "\x00" in justification or _SURROGATE.search(justification):
        return None
    return {"choice": choice, "dimensions": dict(dimensions), "justification": justification}


_JUSTIFICATION_MAX = 5000
_SURROGATE = re.compile("[\ud800-\udfff]")


def _judgment_output(judgment) -> dict:
    """JudgmentSubmitApi.OutputSerializer(judgment).data, without building the serializer."""
    return {
        "id": int(judgment.id),
        "assignment_id": _ASSIGNMENT_ID.to_representation(judgment.assignment_id),
        "choice": JudgmentSubmitApi.OutputSerializer.get_choice(None, judgment),
        "created_at": _CREATED_AT.to_representation(judgment.created_at),
    }
