"""Content-Security-Policy on every response: django-csp's middleware, with one policy for our pages and the
directives that pages we do not write need, per path prefix.

settings.CONTENT_SECURITY_POLICY is the strict policy of our own pages. Django's admin, DRF's browsable API and the
API docs (Swagger UI, Redoc) are other people's JavaScript: for their prefixes, settings.TANDEM_CSP_OVERRIDES
replaces a few directives (the longest matching prefix wins). A view may still choose its own with django-csp's
decorators (csp_replace, csp_update, csp_exempt).
"""

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only=report_only)
        if not report_only and parts.config is None and parts.replace is None:
            parts.replace = _override_for(request.path_info)
        return parts


def _override_for(path: str) -> dict | None:
    overrides = settings.TANDEM_CSP_OVERRIDES
    return next((overrides[p] for p in sorted(overrides, key=len, reverse=True) if path.startswith(p)), None)
