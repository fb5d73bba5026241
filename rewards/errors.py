"""Rewards' domain errors. They extend annotation's, so the API maps them to `{"code", "detail"}` the same way."""

from core.errors import TandemError


class DatasetError(TandemError):
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


class EvaluationBatchNamed(DatasetError):
    """An evaluation batch named for a snapshot without include_evaluation: checkpoints judged against each other are
    not training data unless an ML engineer asks for them."""

    code = "evaluation_batch"


class QualificationBatchNamed(DatasetError):
    """A qualification batch named for a snapshot: it tests annotators on gold items and is never training data."""

    code = "qualification_batch"


class SnapshotImmutable(ValueError):
    """A stored dataset snapshot was about to be changed: a new snapshot is made instead."""


class DatasetTampered(TandemError):
    """A snapshot's file is missing or its sha256 differs from the one stored when it was written."""

    status, code = 409, "dataset_tampered"


# --- Labelled sources and SFT snapshots (issue 15) ---------------------------------------------------------------


class UnknownSource(DatasetError):
    """A name given as a labelled source that is not a labelled batch (Batch.Kind.LABELLED) of the project."""

    code = "unknown_source"


class SourceFormatMismatch(DatasetError):
    """A labelled source of the wrong format for the snapshot: demonstrations in a preference snapshot, preference
    data in an SFT snapshot."""

    code = "source_format"


class LabelledBatchNamed(DatasetError):
    """A labelled source named among the batches: it is taken by name, as a source, so that rows say where they came
    from."""

    code = "labelled_batch"


class DemonstrationBatchNamed(DatasetError):
    """A demonstration batch named for a preference snapshot: its items are prompts with written answers, not pairs."""

    code = "demonstration_batch"


class NotDemonstrationBatch(DatasetError):
    """A batch named for an SFT snapshot that is not a demonstration batch."""

    code = "not_demonstration_batch"


class NoDemonstrations(DatasetError):
    """An SFT snapshot whose batches and sources hold no accepted demonstration."""

    code = "no_demonstrations"
