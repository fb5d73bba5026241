"""Bounds on ids and lists of ids that clients send: every id fits a bigint, every list fits one SQL statement."""

from django.conf import settings
from rest_framework import serializers

# Primary keys are bigints: a larger number is refused as input, never handed to the database driver.
MAX_ID = 2**63 - 1


def IdField(**kwargs) -> serializers.IntegerField:
    """A database id: an integer from 1 to MAX_ID (DRF answers 400 with the field's error otherwise)."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def IdListField(**kwargs) -> serializers.ListField:
    """A list of database ids, at most TANDEM_MAX_IDS_PER_REQUEST long.

    Without a cap, a list of 70,000 ids passes validation and then breaks the database's limit on bound
    parameters (65,535 on PostgreSQL, 32,766 on SQLite): a 500 instead of a 400.
    """
    return serializers.ListField(child=IdField(), max_length=settings.TANDEM_MAX_IDS_PER_REQUEST, **kwargs)
