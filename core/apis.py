"""The jobs API: follow a job a request started (an import, a dataset snapshot) until it ends."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.jobs import job_get_for, job_progress
from core.models import Job


class JobOutputSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    result = serializers.JSONField(
        read_only=True,
        help_text="When the job ended: the import report (also on a rejected file) or the dataset snapshot.",
    )
    error = serializers.JSONField(read_only=True, help_text='{"code", "detail"} when the job failed.')

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "kind",
            "project",
            "state",
            "progress",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "result",
            "error",
        ]

    def get_progress(self, job) -> dict:
        return job_progress(job=job)

    def get_created_by(self, job) -> str | None:
        return job.created_by.get_username() if job.created_by else None

    def get_url(self, job) -> str:
        return job_url(job, self.context.get("request"))


def job_url(job: Job, request=None) -> str:
    url = reverse("core:job-detail", kwargs={"job_id": job.pk})
    return request.build_absolute_uri(url) if request is not None else url


def job_accepted(job: Job, request) -> Response:
    """The answer to a request that started a job: 202, the job, and its URL in Location."""
    body = JobOutputSerializer(job, context={"request": request}).data
    return Response(body, status=202, headers={"Location": body["url"]})


class JobDetailApi(APIView):
    """A job's state (queued, running, succeeded, failed), progress and times; at the end its result or error. Readable
    by whoever may do the job's action in its project (an import: leads; a dataset snapshot: leads, ML engineers)."""

    @extend_schema(responses=JobOutputSerializer)
    def get(self, request, job_id: int):
        job = job_get_for(user=request.user, job_id=job_id)
        return Response(JobOutputSerializer(job, context={"request": request}).data)
