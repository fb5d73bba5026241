"""API authentication: DRF's token scheme with a faster lookup, answering exactly as DRF's own does."""

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from annotation.services import rows


class SqlTokenAuthentication(TokenAuthentication):
    """DRF's token authentication with its lookup written in SQL (the project's default). On the annotator loop the lookup was a fifth of
    the server's CPU per request, nearly all of it spent building the ORM query (bench/annotator_loop.py)."""

    def authenticate_credentials(self, key):
        token = _token(key)
        if token is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token


def user_id_for_token_key(key: str) -> int | None:
    """The id of the active user whose DRF token this is, or None where SqlTokenAuthentication would refuse it.

    For the annotator loop's fast path (annotation.annotator_fast_path), which needs only the id.
    """
    with connection.cursor() as cursor:
        cursor.execute(_USER_ID_SQL, [key])
        found = cursor.fetchone()
    return None if found is None else found[0]


def _token(key: str) -> Token | None:
    found = rows.fetch(_TOKEN_SQL, [key])
    if not found:
        return None
    token = rows.instance(Token, found[0], "token")
    token.user = rows.instance(get_user_model(), found[0], "owner")
    return token


_USER_ID_SQL = f"""
SELECT token.user_id FROM {Token._meta.db_table} token
JOIN {get_user_model()._meta.db_table} owner ON owner.id = token.user_id
WHERE token.key = %s AND owner.is_active
"""  # noqa: S608 (names from the models, no input)
_TOKEN_SQL = f"""
SELECT {rows.columns(Token, "token")}, {rows.columns(get_user_model(), "owner")}
FROM {Token._meta.db_table} token JOIN {get_user_model()._meta.db_table} owner ON owner.id = token.user_id
WHERE token.key = %s
"""  # noqa: S608 (names from the models, no input)
