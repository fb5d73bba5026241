"""Evaluation batches API for a project's leads and ML engineers: make one from two generation runs, list them.
Views parse and delegate to evaluation.services.eval_batches. Annotators never reach these (they name the models)."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import CriteriaVersion
from core.authz import Action, project_for
from core.ids import IdField
from evaluation.errors import EvalBatchRefused
from evaluation.models import EvaluationBatch, Sampled
from evaluation.selectors_batches import evaluation_batch_get, evaluation_batch_list, identity_leaks
from evaluation.services.eval_batches import eval_batch_make, sampled_for_run

ErrorSerializer = inline_serializer(
    name="EvaluationBatchError", fields={"code": serializers.CharField(), "detail": serializers.CharField()}
)


class _SideSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id")

    class Meta:
        model = Sampled
        fields = ["id", "run", "model_key", "label"]


class EvaluationBatchOutputSerializer(serializers.ModelSerializer):
    batch = serializers.SerializerMethodField()
    eval_set = serializers.SerializerMethodField()
    candidate = _SideSerializer()
    baseline = _SideSerializer()
    items = serializers.SerializerMethodField()
    identity_leaks = serializers.SerializerMethodField(
        help_text="Responses per side that match the project's identity-leak patterns: they name a model or vendor to "
        "the annotators who read them."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = EvaluationBatch
        fields = [
            "id",
            "batch",
            "eval_set",
            "candidate",
            "baseline",
            "items",
            "identity_leaks",
            "created_by",
            "created_at",
        ]

    def get_batch(self, evaluation) -> dict:
        batch = evaluation.batch
        return {
            "id": batch.pk,
            "name": batch.name,
            "kind": batch.kind,
            "status": batch.status,
            "criteria_version": batch.criteria_version.number,
            "closed_at": batch.closed_at,
        }

    def get_eval_set(self, evaluation) -> dict:
        eval_set = evaluation.eval_set
        return {"id": eval_set.pk, "name": eval_set.name, "version": eval_set.version}

    def get_identity_leaks(self, evaluation) -> dict[str, int]:
        return identity_leaks(evaluation=evaluation)

    def get_items(self, evaluation) -> int:
        counted = getattr(evaluation, "item_count", None)
        return counted if counted is not None else evaluation.items.count()


class ProjectEvaluationBatchesApi(APIView):
    class InputSerializer(serializers.Serializer):
        candidate_run = IdField(help_text="The candidate's generation run (a generate run on an evaluation set).")
        baseline_run = IdField(help_text="The baseline's generation run, on the same evaluation set.")
        name = serializers.CharField(
            max_length=200,
            required=False,
            allow_blank=True,
            help_text="The batch's name; default eval-<set>-v<version>-<n>. Annotators never see it, but name no "
            "model in it anyway.",
        )
        criteria_version = serializers.IntegerField(
            min_value=1,
            required=False,
            help_text="The criteria version's number; the project's current one if left out.",
        )

    @extend_schema(responses={200: EvaluationBatchOutputSerializer(many=True), 403: ErrorSerializer})
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_EVALUATION, project_id=project_id, what="see evaluation batches"
        )
        return Response(EvaluationBatchOutputSerializer(evaluation_batch_list(project=project), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: EvaluationBatchOutputSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            409: ErrorSerializer,
        },
        description="Makes an evaluation batch of the candidate's responses against the baseline's, one item per "
        "prompt, served to annotators at once. Refused with nothing made: not_generation_run, same_run, "
        "different_eval_sets (400); generation_unfinished, generations_missing, batch_name_taken (409).",
    )
    def post(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.MANAGE_EVALUATION, project_id=project_id, what="make evaluation batches"
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        criteria = None
        if "criteria_version" in data:
            criteria = CriteriaVersion.objects.filter(project=project, number=data["criteria_version"]).first()
            if criteria is None:
                raise EvalBatchRefused(f"Project {project.name} has no criteria version {data['criteria_version']}.")
        evaluation = eval_batch_make(
            candidate=sampled_for_run(run_id=data["candidate_run"], project_id=project.pk),
            baseline=sampled_for_run(run_id=data["baseline_run"], project_id=project.pk),
            name=data.get("name") or None,
            created_by=request.user,
            criteria_version=criteria,
        )
        made = evaluation_batch_get(evaluation_batch_id=evaluation.pk)
        return Response(EvaluationBatchOutputSerializer(made).data, status=status.HTTP_201_CREATED)
