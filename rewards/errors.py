"""Rewards' domain errors. They extend annotation's, so the API maps them to `{"code", "detail"}` the same way."""

from annotation.errors import AnnotationError


class DatasetError(AnnotationError):
    """A dataset snapshot that cannot be made from what was asked (nothing is written or stored)."""

    status, code = 400, "invalid"


class UnknownBatch(DatasetError):
    code = "unknown_batch"


class BatchNotClosed(DatasetError):
    status, code = 409, "batch_open"


class NoBatches(DatasetError):
    code = "no_batches"


class NoPairs(DatasetError):
    code = "no_pairs"


class SnapshotImmutable(ValueError):
    """A stored dataset snapshot was about to be changed: a new snapshot is made instead."""


class DatasetTampered(AnnotationError):
    """A snapshot's file is missing or its sha256 differs from the one stored when it was written."""

    status, code = 409, "dataset_tampered"
