"""The lead's labelled-source import (docs/LABELLED_DATA.md): queued as a job, as the item import is."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.apis import ImportReportSerializer
from annotation.jobs_labelled import labelled_import_submit
from annotation.labelled_format import FORMATS
from annotation.services import ImportRejected
from core.apis import JobOutputSerializer, job_accepted
from core.authz import Action, project_for


class LabelledImportApi(APIView):
    """Queues the import of already-labelled data as a labelled source and answers 202 with the job (GET its `url`
    until it ends: the import report, with `source_format` and the `excluded` lines, is its result). The same rules
    as the item import: a file with any bad line imports nothing; a re-import adds only new lines."""

    throttle_scope = "import"  # TANDEM_THROTTLE_HEAVY per user (core/throttling.py)

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text="JSONL (or .jsonl.gz): HH-RLHF pairs, items with preferred, scored responses or demonstrations."
        )
        source = serializers.CharField(max_length=200, help_text="The labelled source's name; made if missing.")
        format = serializers.ChoiceField(
            choices=FORMATS, required=False, help_text="The file's format; told from its first line if left out."
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
            job = labelled_import_submit(
                project=project,
                source_name=serializer.validated_data["source"],
                upload=serializer.validated_data["file"],
                format=serializer.validated_data.get("format"),
                created_by=request.user,
            )
        except ImportRejected as exc:  # refused before queueing (not a labelled source, another format)
            return Response(exc.report.as_dict(), status=status.HTTP_400_BAD_REQUEST)
        return job_accepted(job, request)
