"""API authentication: DRF's token scheme with a faster lookup, answering exactly as DRF's own does."""

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from annotation.services import rows
from core.lockout import TokenLockedOut, token_failure_record, token_lockout_wait
from core.throttling import client_address


class SqlTokenAuthentication(TokenAuthentication):
    """DRF's token authentication with its lookup written in SQL (the project's default). On the annotator loop the lookup was a fifth of
    the server's CPU per request, nearly all of it spent building the ORM query (bench/annotator_loop.py).

    Failed token authentications are counted per client address; an address past the limit is answered 429 before
    any token is looked at (core.lockout)."""

    def authenticate(self, request):
        address = client_address(request)
        wait = token_lockout_wait(address)
        if wait is not None and self.keyword_in(request):
            raise TokenLockedOut(wait)
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            token_failure_record(address)
            raise

    def keyword_in(self, request) -> bool:
        auth = request.META.get("HTTP_AUTHORIZATION", "").split()
        return bool(auth) and auth[0].lower() == self.keyword.lower()

    def authenticate_credentials(self, key):
        token = _token(key)
        if token is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token


TOKEN_OWNER_SQL = (
    f"(SELECT token.user_id FROM {Token._meta.db_table} token "  # noqa: S608 (names from the models, no input)
    f"JOIN {get_user_model()._meta.db_table} owner ON owner.id = token.user_id "
    "WHERE token.key = %s AND owner.is_active)"
)


def user_id_for_token_key(key: str) -> int | None:
    """The id of the active user whose DRF token this is, or None where SqlTokenAuthentication would refuse it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {TOKEN_OWNER_SQL}", [key])
        return cursor.fetchone()[0]


def _token(key: str) -> Token | None:
    found = rows.fetch(_TOKEN_SQL, [key])
    if not found:
        return None
    token = rows.instance(Token, found[0], "token")
    token.user = rows.instance(get_user_model(), found[0], "owner")
    return token


_TOKEN_SQL = f"""
SELECT {rows.columns(Token, "token")}, {rows.columns(get_user_model(), "owner")}
FROM {Token._meta.db_table} token JOIN {get_user_model()._meta.db_table} owner ON owner.id = token.user_id
WHERE token.key = %s
"""  # noqa: S608 (names from the models, no input)
