"""The annotator API (the contract in ARCHITECTURE.md). Nothing here names a model, side A, gold, or others' votes."""

import hashlib
import hmac
import re

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import AnnotationSession, Assignment, Project, ReportKind
from annotation.rules import DIMENSION_CHOICES, SIDE_CHOICES
from annotation.services.annotator_actions import (
    REPORT_NOTE_MAX,
    SKIP_REASON_MAX,
    assignment_renew,
    assignment_skip,
    item_report,
    judgment_revise,
)
from annotation.services.assignments import assignment_next_for
from annotation.services.demonstrations import demonstration_submit
from annotation.services.judgments import judgment_choices, judgment_submit
from annotation.services.sessions import session_start

ErrorSerializer = inline_serializer(
    name="Error", fields={"code": serializers.CharField(), "detail": serializers.CharField()}
)


class SessionOutputSerializer(serializers.ModelSerializer):
    # The page offers "undo" for this long after a judgment (annotation.services.annotator_actions.judgment_revise).
    revise_window_seconds = serializers.IntegerField(source="project.revise_window_seconds", read_only=True)
    # How long a lease runs: the page renews it well before the end (annotator_actions.assignment_renew).
    lease_minutes = serializers.IntegerField(source="project.lease_minutes", read_only=True)

    class Meta:
        model = AnnotationSession
        fields = ["id", "kind", "expires_at", "max_tasks", "tasks_done", "revise_window_seconds", "lease_minutes"]


class SessionStartApi(APIView):
    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField(
            required=False,
            default=AnnotationSession.Kind.COMPARISON.value,
            help_text="comparison (judge two responses, the default) or demonstration (write the response). One open "
            "session of each kind; 400 invalid_kind for another.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: SessionOutputSerializer,
            200: SessionOutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description='{"code": "invalid_kind"}'),
            403: ErrorSerializer,
            404: ErrorSerializer,
            429: OpenApiResponse(ErrorSerializer, description='{"code": "on_break", "retry_after": seconds}'),
        },
    )
    def post(self, request, project_id: int):
        project = get_object_or_404(Project, pk=project_id)
        serializer = self.InputSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        session, created = session_start(
            project=project, annotator=request.user, kind=serializer.validated_data["kind"]
        )
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


def criteria_payload(*, criteria, project: Project) -> dict:
    """What an annotator is told to judge by, served with every item: the criteria version's dimensions (priority
    order), its number, the choices the project allows and whether a justification is required. The hand-off
    package's guidelines are this, as served."""
    return {
        "dimensions": [
            {"key": d.get("key"), "label": d.get("label", d.get("key")), "description": d.get("description", "")}
            for d in sorted(criteria.dimensions, key=lambda d: d.get("priority", 0))
        ],
        "criteria_version": criteria.number,
        "choices": judgment_choices(project=project),
        "require_justification": project.require_justification,
    }


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
            **criteria_payload(criteria=criteria, project=project),
            "lease_expires_at": assignment.lease_expires_at,
        }
    )
    # While qualifying (annotation.services.qualification): how far the attempt has come, nothing about any answer.
    qualification = getattr(assignment, "qualification", None)
    if qualification is not None:
        payload["qualification"] = {"answered": qualification["answered"], "size": qualification["size"]}
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
        "qualification": inline_serializer(
            name="QualificationProgress",
            fields={"answered": serializers.IntegerField(), "size": serializers.IntegerField()},
            required=False,
            help_text="Only while the project's qualification is being taken: items answered of the attempt's size.",
        ),
    },
)


def guidelines_payload(*, criteria, project: Project) -> dict:
    """What a writer is told to write by: the project's guidelines (the comparison page's "Guidelines") and the
    criteria version's number, scope, criteria and disqualifiers, as the hand-off package's guidelines give them."""
    return {
        "criteria_version": criteria.number,
        "text": project.description,
        "scope": criteria.scope,
        "dimensions": criteria_payload(criteria=criteria, project=project)["dimensions"],
        "disqualifiers": [str(d) for d in criteria.disqualifiers],
    }


def demonstration_payload(assignment: Assignment, project: Project) -> dict:
    """A demonstration session's `next`: the prompt, the guidelines and the length limits. Nothing anyone else wrote
    for the prompt, and nothing a review said."""
    item = assignment.item
    payload = {"assignment_id": str(assignment.pk), "kind": AnnotationSession.Kind.DEMONSTRATION.value}
    if item.messages is not None:
        payload["messages"] = [{"role": m["role"], "content": m["content"]} for m in item.messages]
    else:
        payload["prompt"] = item.prompt
    payload.update(
        {
            "guidelines": guidelines_payload(criteria=item.batch.criteria_version, project=project),
            "min_chars": project.demonstration_min_chars,
            "max_chars": project.demonstration_max_chars,
            "lease_expires_at": assignment.lease_expires_at,
        }
    )
    return payload


DemonstrationNextSerializer = inline_serializer(
    name="NextDemonstration",
    fields={
        "assignment_id": serializers.UUIDField(),
        "kind": serializers.ChoiceField(choices=["demonstration"]),
        "prompt": serializers.CharField(required=False),
        "messages": serializers.ListField(child=serializers.DictField(), required=False),
        "guidelines": inline_serializer(
            name="WritingGuidelines",
            fields={
                "criteria_version": serializers.IntegerField(),
                "text": serializers.CharField(),
                "scope": serializers.CharField(),
                "dimensions": serializers.ListField(child=serializers.DictField()),
                "disqualifiers": serializers.ListField(child=serializers.CharField()),
            },
        ),
        "min_chars": serializers.IntegerField(),
        "max_chars": serializers.IntegerField(),
        "lease_expires_at": serializers.DateTimeField(),
    },
)


class NextAssignmentApi(APIView):
    @extend_schema(
        responses={
            200: PolymorphicProxySerializer(
                component_name="NextTask",
                serializers=[NextSerializer, DemonstrationNextSerializer],
                resource_type_field_name=None,
            ),
            204: OpenApiResponse(description="Nothing left to judge."),
            403: OpenApiResponse(
                ErrorSerializer, description='{"code": "not_qualified"}: the project\'s qualification was not passed'
            ),
            404: ErrorSerializer,
            410: OpenApiResponse(ErrorSerializer, description='{"code": "session_limit"}'),
        }
    )
    def get(self, request, session_id: int):
        session, assignment = assignment_next_for(session_id=session_id, annotator_id=request.user.pk)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        if session.kind == AnnotationSession.Kind.DEMONSTRATION:
            return Response(demonstration_payload(assignment, session.project))
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


# --- Skip, report, renew, revise (issue 13). Each answers only the assignment's or judgment's own annotator; anyone
# else gets the 404 a missing one gets. The answers speak the annotator's terms (left/right), as the judgment's do.


class AssignmentSkipApi(APIView):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=SKIP_REASON_MAX)

    OutputSerializer = inline_serializer(
        name="SkippedAssignment",
        fields={"assignment_id": serializers.UUIDField(), "skipped_at": serializers.DateTimeField()},
    )

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        description="Pass on the item: it goes back to the pool for others and is never served to you again. "
        "Skipping twice answers the first skip; a judged item cannot be skipped (409 already_judged).",
    )
    def post(self, request, assignment_id):
        serializer = self.InputSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        assignment = assignment_skip(
            assignment_id=assignment_id, annotator_id=request.user.pk, reason=serializer.validated_data["reason"]
        )
        return Response({"assignment_id": str(assignment.pk), "skipped_at": assignment.skipped_at})


class ItemReportApi(APIView):
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ReportKind.values)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=REPORT_NOTE_MAX)

    OutputSerializer = inline_serializer(
        name="ItemReported",
        fields={
            "id": serializers.IntegerField(),
            "assignment_id": serializers.UUIDField(),
            "kind": serializers.CharField(),
            "skipped": serializers.BooleanField(),
            "created_at": serializers.DateTimeField(),
        },
    )

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
        description="Report the item to the project's leads (broken, harmful, out_of_scope). An item you have not "
        "judged is also skipped. One report per assignment: a second answers the first (200).",
    )
    def post(self, request, assignment_id):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report, created = item_report(
            assignment_id=assignment_id, annotator_id=request.user.pk, **serializer.validated_data
        )
        body = {
            "id": report.pk,
            "assignment_id": str(report.assignment_id),
            "kind": report.kind,
            "skipped": report.assignment.skipped_at is not None,
            "created_at": report.created_at,
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AssignmentRenewApi(APIView):
    OutputSerializer = inline_serializer(
        name="RenewedLease",
        fields={
            "assignment_id": serializers.UUIDField(),
            "lease_expires_at": serializers.DateTimeField(),
            "relet": serializers.BooleanField(),
        },
    )

    @extend_schema(
        request=None,
        responses={
            200: OutputSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            410: OpenApiResponse(
                ErrorSerializer, description="lease_lost, skipped, item_withdrawn, batch_closed or session_limit"
            ),
        },
        description="Keep the lease alive while you work on the item: it then runs the project's lease minutes "
        "from now. A lease that lapsed is let again (relet true) if the item is still free; otherwise 410 "
        "lease_lost says the pick cannot be kept.",
    )
    def post(self, request, assignment_id):
        assignment, relet = assignment_renew(assignment_id=assignment_id, annotator_id=request.user.pk)
        return Response(
            {"assignment_id": str(assignment.pk), "lease_expires_at": assignment.lease_expires_at, "relet": relet}
        )


class JudgmentRevisionApi(APIView):
    InputSerializer = JudgmentSubmitApi.InputSerializer

    OutputSerializer = inline_serializer(
        name="RevisedJudgment",
        fields={
            "id": serializers.IntegerField(),
            "assignment_id": serializers.UUIDField(),
            "choice": serializers.CharField(),
            "revised": serializers.BooleanField(),
            "revisions": serializers.IntegerField(),
            "revised_at": serializers.DateTimeField(allow_null=True),
        },
    )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="item_complete"),
            410: OpenApiResponse(ErrorSerializer, description="revise_window_closed, batch_closed or item_withdrawn"),
        },
        description="Revise your judgment (same body as the judgment) within the project's revise_window_seconds "
        "of making it, while its item is still open. The judgment keeps its id and its counts; the old answer is "
        "kept as a revision (201). The same answer as the stored one changes nothing (200).",
    )
    def post(self, request, judgment_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        judgment, revision = judgment_revise(
            judgment_id=judgment_id, annotator_id=request.user.pk, **serializer.validated_data
        )
        body = {
            **_judgment_output(judgment),
            "revised": revision is not None,
            "revisions": judgment.revisions.count(),
            "revised_at": judgment.revised_at,
        }
        return Response(body, status=status.HTTP_201_CREATED if revision else status.HTTP_200_OK)


class DemonstrationSubmitApi(APIView):
    """A demonstration session's answer: the response the annotator wrote for the prompt."""

    class InputSerializer(serializers.Serializer):
        # Not trimmed here: the service trims, and counts the length limits on what it stores.
        text = serializers.CharField(trim_whitespace=False, allow_blank=True)

    OutputSerializer = inline_serializer(
        name="WrittenDemonstration",
        fields={
            "id": serializers.IntegerField(),
            "assignment_id": serializers.UUIDField(),
            "chars": serializers.IntegerField(),
            "created_at": serializers.DateTimeField(),
        },
    )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="text_too_short, text_too_long or invalid"),
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="conflict (another text) or wrong_task (a comparison)"),
            410: OpenApiResponse(ErrorSerializer, description="lease_expired, overlap_full or batch_closed"),
        },
        description="Send the response you wrote for a demonstration assignment. The length limits are the "
        "project's (min_chars and max_chars in `next`), counted in characters after surrounding blank space is "
        "dropped. The same text again answers the stored one (200); another text is a conflict (409).",
    )
    def post(self, request, assignment_id):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        demonstration, created = demonstration_submit(
            assignment_id=assignment_id, annotator_id=request.user.pk, text=serializer.validated_data["text"]
        )
        body = {
            "id": demonstration.pk,
            "assignment_id": str(demonstration.assignment_id),
            "chars": len(demonstration.text),
            "created_at": demonstration.created_at,
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
