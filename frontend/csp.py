"""A strict Content-Security-Policy for the pages: the second line of defence against model output turned into HTML.

The first line is the page's JavaScript, which builds the DOM from text nodes only. If that ever slips, this
policy still refuses inline script, event-handler attributes, javascript: URLs, plugins, frames and foreign
origins, and Trusted Types make any string written to an HTML sink (innerHTML and friends) throw.
"""

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)


def strict_csp(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Sets the strict policy on the view's responses (a view that set its own keeps it)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response

    return wrapped
