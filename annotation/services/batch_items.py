"""Batches made by another app rather than by a file import: an empty batch of a kind, then items the caller has
prepared (evaluation batches: evaluation.services.eval_batches). The item rules of the import hold here too."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from annotation.import_format import MAX_EXTERNAL_ID, MAX_SHORT_FIELD, ROLES, STRATA
from annotation.models import Batch, CriteriaVersion, Item, Project
from annotation.services.projects import project_current_criteria
from core.errors import TandemError

# What no text column can store (PostgreSQL refuses NUL; no UTF-8 encoder takes a lone surrogate): as the import.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The dedupe key is "<kind>:<batch id>:<key>" in a column of 220 characters.
MAX_KEY = 180


class BatchNameTaken(TandemError):
    status, code = 409, "batch_name_taken"


class BatchNotOpen(TandemError):
    status, code = 409, "batch_closed"


class PreparedItemsInvalid(TandemError):
    status, code = 400, "invalid_items"


@dataclass(frozen=True, slots=True)
class PreparedItem:
    """One item as the caller built it. `key` is unique within the batch: the item's dedupe key is made from it and
    the batch, so items of two batches never collide (a re-import skips items by that key)."""

    key: str
    response_a_text: str
    response_b_text: str
    prompt: str = ""
    messages: list[dict] | None = None
    external_id: str = ""
    response_a_model: str = ""
    response_b_model: str = ""
    stratum: str = ""
    category: str = ""


@transaction.atomic
def batch_create(
    *,
    project: Project,
    name: str,
    kind: str = Batch.Kind.COMPARISON,
    criteria_version: CriteriaVersion | None = None,
) -> Batch:
    """A new, empty, open batch pinned to `criteria_version` (the project's current one when None).

    Refuses (nothing written) a name the project already uses (409 batch_name_taken), a criteria version of another
    project, an unknown kind.
    """
    if kind not in Batch.Kind.values:
        raise PreparedItemsInvalid(f"Unknown batch kind {kind!r}: use one of {', '.join(Batch.Kind.values)}.")
    if criteria_version is None:
        criteria_version = project_current_criteria(project=project)
    elif criteria_version.project_id != project.pk:
        raise PreparedItemsInvalid(f"Criteria version {criteria_version.number} is not one of {project.name}'s.")
    name = name.strip()
    if not name or len(name) > Batch._meta.get_field("name").max_length:
        raise PreparedItemsInvalid("A batch name is 1 to 200 characters.")
    if Batch.objects.filter(project=project, name=name).exists():
        raise BatchNameTaken(f"Project {project.name} already has a batch named {name!r}.", name=name)
    batch = Batch(project=project, name=name, kind=kind, criteria_version=criteria_version)
    try:
        with transaction.atomic():  # a concurrent batch of the same name: its own savepoint, a clear 409
            batch.save()
    except IntegrityError:
        raise BatchNameTaken(f"Project {project.name} already has a batch named {name!r}.", name=name) from None
    return batch


@transaction.atomic
def batch_items_add(*, batch: Batch, items: Sequence[PreparedItem]) -> list[Item]:
    """Adds the prepared items to the open batch, all or none; returns them (with their ids) in the order given.

    The import's rules: a prompt or messages (ending with the user's turn), a known stratum or none, short fields
    within their limits, text a database can store. Every bad item is named in the error. Two responses may be the
    same text (two checkpoints that answer alike are a real tie, unlike a duplicated line in a file).
    """
    locked = Batch.objects.select_for_update().get(pk=batch.pk)
    if locked.status != Batch.Status.OPEN:
        raise BatchNotOpen(f"Batch {locked.name!r} is closed: items go into an open batch.")
    problems = []
    keys = set()
    for n, item in enumerate(items):
        problems += [f"item {n} ({item.key}): {reason}" for reason in _problems(item)]
        if item.key in keys:
            problems.append(f"item {n} ({item.key}): the key is used twice")
        keys.add(item.key)
    if problems:
        raise PreparedItemsInvalid(
            f"{len(problems)} problem(s); nothing was added: " + "; ".join(problems[:20]), problems=problems[:1000]
        )
    rows = [
        Item(
            project_id=locked.project_id,
            batch=locked,
            external_id=item.external_id,
            dedupe_key=f"{locked.kind}:{locked.pk}:{item.key}",
            prompt=item.prompt if item.messages is None else "",
            messages=item.messages,
            response_a_text=item.response_a_text,
            response_a_model=item.response_a_model,
            response_b_text=item.response_b_text,
            response_b_model=item.response_b_model,
            stratum=item.stratum,
            category=item.category,
        )
        for item in items
    ]
    return Item.objects.bulk_create(rows, batch_size=1000)


def _problems(item: PreparedItem) -> list[str]:
    found = []
    if item.messages is None:
        if not item.prompt.strip():
            found.append("no prompt and no messages")
    elif not isinstance(item.messages, list) or not item.messages:
        found.append("messages must be a non-empty list of {role, content}")
    else:
        for i, message in enumerate(item.messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                found.append(f"messages[{i}] needs a role among {', '.join(ROLES)}")
            elif not isinstance(message.get("content"), str):
                found.append(f"messages[{i}].content must be text")
        if not found and item.messages[-1]["role"] != "user":
            found.append("the last message must be the user's: the responses answer it")
    if item.stratum and item.stratum not in STRATA:
        found.append(f"stratum {item.stratum!r}: use one of {', '.join(STRATA)}, or none")
    if not item.key or len(item.key) > MAX_KEY:
        found.append(f"a key is 1 to {MAX_KEY} characters")
    if len(item.external_id) > MAX_EXTERNAL_ID:
        found.append(f"the id is over {MAX_EXTERNAL_ID} characters")
    for name in ("category", "response_a_model", "response_b_model"):
        if len(getattr(item, name)) > MAX_SHORT_FIELD:
            found.append(f"{name} is over {MAX_SHORT_FIELD} characters")
    texts = [item.prompt, item.response_a_text, item.response_b_text, item.category, item.external_id]
    texts += [m.get("content", "") for m in item.messages or [] if isinstance(m, dict)]
    if any(isinstance(t, str) and _UNSTORABLE.search(t) for t in texts):
        found.append("a text holds NUL or a lone surrogate, which cannot be stored")
    return found
