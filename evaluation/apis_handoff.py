"""The hand-off package download (`GET /api/v1/releases/{id}/package/`): streamed after its sha256 was checked."""

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.views import APIView

from annotation.annotator_apis import ErrorSerializer
from core.authz import Action, check
from evaluation.models import Release
from evaluation.services.handoff import handoff_verify


class ReleasePackageApi(APIView):
    """The release's package (.tar.gz): leads, ML engineers and reviewers of its project. 409 package_tampered when
    the file differs from the sha256 stored when it was built, 409 package_not_built before the worker wrote it."""

    @extend_schema(
        responses={
            (200, "application/gzip"): OpenApiResponse(OpenApiTypes.BINARY, description="the package"),
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def get(self, request, release_id: int):
        release = Release.objects.select_related("project").filter(pk=release_id).first()
        if release is None:
            raise Http404("No such release.")
        check(user=request.user, action=Action.VIEW_RELEASES, project=release.project_id, what="download packages")
        path = handoff_verify(release=release)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="application/gzip")
