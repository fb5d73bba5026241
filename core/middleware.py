"""Content-Security-Policy on every response: django-csp's middleware, with one policy for our pages and the
directives that pages we do not write need, per path prefix.

settings.CONTENT_SECURITY_POLICY is the strict policy of our own pages. Django's admin, DRF's browsable API and the
API docs (Swagger UI, Redoc) are other people's JavaScript: for their prefixes, settings.TANDEM_CSP_OVERRIDES
replaces a few directives (the longest matching prefix wins). A view may still choose its own with django-csp's
decorators (csp_replace, csp_update, csp_exempt).
"""

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings

# What a view can set to change its policy (django-csp's decorators); a response with none of them, and a request
# that used no nonce, gets the policy of its path as built once (building it cost ~50 µs a response, a sixth of the
# annotator loop's added CPU per request; bench/README.md).
_PER_VIEW = ("_csp_config", "_csp_update", "_csp_replace", "_csp_exempt", "_csp_config_ro", "_csp_update_ro")


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def __init__(self, get_response=None):
        super().__init__(get_response)
        self._built: dict[str | None, tuple[object, object, str]] = {}

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only=report_only)
        if not report_only and parts.config is None and parts.replace is None:
            parts.replace = _override_for(request.path_info)
        return parts

    def process_response(self, request, response):
        plain = (
            HEADER not in response
            and not any(hasattr(response, name) for name in _PER_VIEW)
            and not isinstance(getattr(request, "_csp_nonce", None), str)
            and not getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            and not (settings.DEBUG and response.status_code in (404, 500))
            and not (settings.CONTENT_SECURITY_POLICY or {}).get("EXCLUDE_URL_PREFIXES")
        )
        if not plain:
            return super().process_response(request, response)
        response[HEADER] = self._policy_for(request.path_info)
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response

    def _policy_for(self, path: str) -> str:
        """The header for a path, built by django-csp once per override prefix and kept while the settings hold
        the same objects (a test's override_settings makes new ones)."""
        prefix = _prefix_for(path)
        policy, overrides = settings.CONTENT_SECURITY_POLICY, settings.TANDEM_CSP_OVERRIDES
        kept = self._built.get(prefix)
        if kept is None or kept[0] is not policy or kept[1] is not overrides:
            header = build_policy(replace=overrides[prefix] if prefix is not None else None)
            kept = self._built[prefix] = (policy, overrides, header)
        return kept[2]


def _prefix_for(path: str) -> str | None:
    """The longest prefix of TANDEM_CSP_OVERRIDES the path starts with."""
    return next((p for p in sorted(settings.TANDEM_CSP_OVERRIDES, key=len, reverse=True) if path.startswith(p)), None)


def _override_for(path: str) -> dict | None:
    prefix = _prefix_for(path)
    return settings.TANDEM_CSP_OVERRIDES[prefix] if prefix is not None else None
