"""The lead's review of demonstrations: the queue, a review, per-writer figures (REVIEW_DEMONSTRATIONS: leads).
Views parse, ask core.authz, and delegate to annotation.services.demonstration_review and its selectors."""

from django.core.paginator import EmptyPage, Paginator
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.selectors_demonstration_review import (
    STATUSES,
    QueueFilters,
    demonstration_for_review,
    demonstration_queue,
    demonstration_row,
    writer_figures,
)
from annotation.services.demonstration_review import DECISIONS, REASON_MAX_CHARS, demonstration_review
from core.authz import Action, check, project_for
from core.ids import IdField

QUEUE_PAGE_SIZE = 25
WHAT = "review demonstrations"


class DemonstrationSerializer(serializers.Serializer):
    """A demonstration as the queue and a review show it (annotation.selectors_demonstration_review)."""

    id = serializers.IntegerField()
    item_id = serializers.CharField(help_text="The item's external id, else its primary key.")
    batch_id = serializers.IntegerField()
    batch = serializers.CharField()
    prompt = serializers.CharField()
    messages = serializers.JSONField(allow_null=True)
    writer_id = serializers.IntegerField()
    writer = serializers.CharField()
    text = serializers.CharField(help_text="As written; never changed by a review.")
    length = serializers.IntegerField()
    seconds = serializers.FloatField(allow_null=True)
    status = serializers.ChoiceField(choices=STATUSES)
    edited_text = serializers.CharField(help_text="The reviewer's edit, when accepted with edits.")
    final_text = serializers.CharField(help_text="What an SFT snapshot takes: the edit if any, else the text.")
    review_reason = serializers.CharField()
    reviewed_by = serializers.CharField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class QueueQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[*STATUSES, "all"], default="pending", help_text="pending (the default), accepted, rejected or all."
    )
    batch = IdField(required=False, help_text="Only this batch of the project.")
    writer = IdField(required=False, help_text="Only this writer's (a user id).")
    page = serializers.IntegerField(required=False, min_value=1, max_value=10**9, default=1)


class DemonstrationQueueApi(APIView):
    """The project's written demonstrations, oldest first (the review queue with status=pending, the default),
    in pages of 25."""

    @extend_schema(
        parameters=[QueueQuerySerializer],
        responses=inline_serializer(
            name="DemonstrationQueue",
            fields={
                "count": serializers.IntegerField(),
                "page": serializers.IntegerField(),
                "pages": serializers.IntegerField(),
                "results": DemonstrationSerializer(many=True),
            },
        ),
    )
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.REVIEW_DEMONSTRATIONS, project_id=project_id, what=WHAT)
        query = QueueQuerySerializer(data=_given(request.query_params))
        query.is_valid(raise_exception=True)
        filters = queue_filters(project=project, data=query.validated_data)
        paginator = Paginator(demonstration_queue(project=project, filters=filters), QUEUE_PAGE_SIZE)
        number = query.validated_data["page"]
        try:
            page = paginator.page(number)
        except EmptyPage as exc:
            if number != 1:
                raise NotFound("No such page.") from exc
            page = None
        return Response(
            {
                "count": paginator.count,
                "page": page.number if page else 1,
                "pages": paginator.num_pages if paginator.count else 0,
                "results": [demonstration_row(d) for d in page.object_list] if page else [],
            }
        )


def _given(params) -> dict:
    """The query's parameters with a value: `?batch=&writer=` (a form's "any") filters nothing."""
    return {key: value for key, value in params.items() if value != ""}


def queue_filters(*, project, data: dict) -> QueueFilters:
    """The validated query as filters; a batch of another project is a 404 like a missing one."""
    batch_id = data.get("batch")
    if batch_id is not None and not project.batches.filter(pk=batch_id).exists():
        raise NotFound("No such batch in this project.")
    status = data.get("status", "pending")
    return QueueFilters(status=None if status == "all" else status, batch_id=batch_id, writer_id=data.get("writer"))


class DemonstrationReviewApi(APIView):
    """Accept a pending demonstration (with `edited_text`: accepted with edits, the text as written kept), or
    reject it with a `reason`. A decision is final: another review answers 409 already_reviewed; the same review
    again answers 200 with changed false. A lead does not review their own demonstration (403 own_demonstration)."""

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=DECISIONS)
        edited_text = serializers.CharField(
            required=False, allow_blank=True, trim_whitespace=False, help_text="accept only: the reviewer's edit."
        )
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=REASON_MAX_CHARS,
            help_text="reject: why (required); accept: an optional note.",
        )

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer(
            name="DemonstrationReview",
            fields={"changed": serializers.BooleanField(), "demonstration": DemonstrationSerializer()},
        ),
    )
    def post(self, request, demonstration_id: int):
        demonstration = demonstration_for_review(demonstration_id=demonstration_id)
        if demonstration is None:
            raise Http404("Not found.")
        check(user=request.user, action=Action.REVIEW_DEMONSTRATIONS, project=demonstration.batch.project_id, what=WHAT)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review = demonstration_review(
            demonstration_id=demonstration.pk,
            reviewer=request.user,
            decision=body.validated_data["decision"],
            edited_text=body.validated_data.get("edited_text", ""),
            reason=body.validated_data.get("reason", ""),
        )
        reviewed = demonstration_for_review(demonstration_id=demonstration.pk)
        return Response({"changed": review.changed, "demonstration": demonstration_row(reviewed)})


class DemonstrationWritersApi(APIView):
    """Per writer: counts, acceptance rate, Levenshtein distance of reviewers' edits, median seconds and length."""

    class QuerySerializer(serializers.Serializer):
        batch = IdField(required=False, help_text="Only this batch of the project.")

    @extend_schema(parameters=[QuerySerializer], responses=serializers.ListSerializer(child=serializers.JSONField()))
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.REVIEW_DEMONSTRATIONS, project_id=project_id, what=WHAT)
        query = self.QuerySerializer(data=_given(request.query_params))
        query.is_valid(raise_exception=True)
        batch_id = query.validated_data.get("batch")
        if batch_id is not None and not project.batches.filter(pk=batch_id).exists():
            raise NotFound("No such batch in this project.")
        return Response(writer_figures(project=project, batch_id=batch_id))
