"""The annotation API for leads (members, import as a job) and members (project list). Views only parse and
delegate."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.jobs import items_import_submit
from annotation.models import Batch, Project, Role
from annotation.selectors import project_list_for, project_roles_for
from annotation.services import ImportRejected, member_add, member_remove
from annotation.services.batches import batch_close
from annotation.services.imports import IMPORT_KINDS
from annotation.services.members import MemberError
from core.apis import JobOutputSerializer, job_accepted
from core.authz import Action, check, project_for


class ProjectListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        role = serializers.SerializerMethodField()

        class Meta:
            model = Project
            fields = ["id", "name", "description", "role"]

        def get_role(self, project) -> str | None:
            return self.context["roles"].get(project.pk)

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        projects = project_list_for(user=request.user)
        context = {"request": request, "roles": project_roles_for(user=request.user)}  # one read, not one a project
        return Response(self.OutputSerializer(projects, many=True, context=context).data)


class MemberAddApi(APIView):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Role.choices)

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField(source="user.username")
        role = serializers.CharField()
        project = serializers.IntegerField(source="project_id")

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, 201: OutputSerializer})
    def post(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.MANAGE_MEMBERS, project_id=project_id)
        data = self._validated(request)
        try:
            membership, created = member_add(project=project, **data)
        except MemberError as exc:
            raise serializers.ValidationError({"username": [str(exc)]}) from exc
        return Response(
            self.OutputSerializer(membership).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def _validated(self, request) -> dict:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class MemberDetailApi(APIView):
    """Remove a member: their groups and staff flag follow at once (annotation.services.members)."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, project_id: int, username: str):
        project = project_for(user=request.user, action=Action.MANAGE_MEMBERS, project_id=project_id)
        try:
            removed = member_remove(project=project, username=username)
        except MemberError as exc:
            raise NotFound(str(exc)) from exc
        if not removed:
            raise NotFound(f"{username} is not a member of this project.")
        return Response(status=status.HTTP_204_NO_CONTENT)


ImportReportSerializer = inline_serializer(
    name="ImportReport",
    fields={
        "ok": serializers.BooleanField(),
        "code": serializers.CharField(),
        "kind": serializers.CharField(help_text="The batch's kind: comparison lines, or prompts for demonstration."),
        "project": serializers.CharField(),
        "batch": serializers.CharField(),
        "filename": serializers.CharField(),
        "lines": serializers.IntegerField(),
        "created": serializers.IntegerField(),
        "skipped": serializers.IntegerField(),
        "strata": serializers.DictField(child=serializers.IntegerField()),
        "warnings": serializers.ListField(child=serializers.CharField()),
        "errors": serializers.ListField(
            child=inline_serializer(
                name="ImportError",
                fields={
                    "line": serializers.IntegerField(
                        allow_null=True, help_text="The bad line's number; null for the file as a whole."
                    ),
                    "reason": serializers.CharField(),
                },
            )
        ),
        "error_count": serializers.IntegerField(),
        "seconds": serializers.FloatField(),
        "record_id": serializers.IntegerField(),
    },
)


class ItemImportApi(APIView):
    """Queues the file's import as a job and answers 202 with it (GET its `url` until it ends: the import report is
    its result). A file upload of a gigabyte imports in well over a web request's timeout, hence the worker."""

    throttle_scope = "import"  # TANDEM_THROTTLE_HEAVY per user (core/throttling.py)

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text="JSONL (or .jsonl.gz): the import format, or HH-RLHF chosen/rejected lines."
        )
        batch = serializers.CharField(max_length=200, help_text="Batch name; made if it does not exist.")
        keep_hh_gold = serializers.BooleanField(default=False, help_text="Keep HH-RLHF's known preference as gold.")
        kind = serializers.ChoiceField(
            choices=IMPORT_KINDS,
            required=False,
            help_text="The batch's kind when the import makes it: comparison (the default) or demonstration (prompt-only "
            "lines; annotators write the response). An existing batch of another kind is refused (import_batch_kind). "
            "Left out: the existing batch's kind.",
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={202: JobOutputSerializer, 400: ImportReportSerializer},
    )
    def post(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.IMPORT_ITEMS, project_id=project_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            job = items_import_submit(
                project=project,
                batch_name=serializer.validated_data["batch"],
                upload=serializer.validated_data["file"],
                keep_hh_gold=serializer.validated_data["keep_hh_gold"],
                kind=serializer.validated_data.get("kind"),
                created_by=request.user,
            )
        except ImportRejected as exc:  # refused before queueing (a closed batch, another kind): the report, at once
            return Response(exc.report.as_dict(), status=status.HTTP_400_BAD_REQUEST)
        return job_accepted(job, request)


class BatchCloseApi(APIView):
    """Close a batch: it serves no more items and takes no more judgments; its final agreement snapshot follows."""

    class OutputSerializer(serializers.ModelSerializer):
        project = serializers.IntegerField(source="project_id")
        criteria_version = serializers.IntegerField(source="criteria_version.number")

        class Meta:
            model = Batch
            fields = ["id", "project", "name", "status", "criteria_version", "created_at", "closed_at"]

    @extend_schema(request=None, responses={200: OutputSerializer})
    def post(self, request, batch_id: int):
        batch = get_object_or_404(Batch.objects.only("id", "project_id"), pk=batch_id)
        check(user=request.user, action=Action.MANAGE_BATCHES, project=batch.project_id, what="close batches")
        closed, _ = batch_close(batch=batch, user=request.user)
        return Response(self.OutputSerializer(closed).data)
