"""Serving order carries nothing about other annotators' votes (issue 11, finding 11).

Adaptive overlap keeps an item whose votes split open for one more judgment. If the queue served such items first,
an annotator joining late would learn which items the others disagreed on from the order alone. The late joiner
here meets a batch that earlier annotators left with split, agreed, half-judged and fresh items, takes 20 items
through the API, and the share of split items among them must be what a uniform draw from the items open to them
gives: a hypergeometric test, pooled over several seeded late joiners so that one unlucky draw does not fail it.
"""

import random
from datetime import timedelta

import numpy as np
import pytest
from django.db.models import F
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from scipy import stats

from annotation.models import AnnotationSession, Assignment, Item
from annotation.services import assignments, member_add
from annotation.services.judgments import judgment_submit
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

ITEMS = 200
TAKEN = 20  # what the late joiner takes: the finding's "first 20 items"
SEEDS = range(5)
ALPHA = 0.001
# What the early annotators leave behind (item counts): overlap 3, so "split" items hold 3 votes a / b / tie and
# want a fourth; "agreed" ones are complete; "two" and "one" hold that many votes; the rest are fresh.
PLAN = {"split": 40, "agreed": 80, "two": 10, "one": 10}
VOTES = {"split": ["left", "right", "tie"], "agreed": ["left"] * 3, "two": ["left"] * 2, "one": ["left"]}


def _judge_directly(*, item: Item, annotator, choice: str) -> None:
    """An earlier annotator's judgment on this very item: the lease is made here, not by the engine, so the state
    the late joiner meets is the same whatever order the engine serves in; the judgment goes through the service,
    so adaptive overlap reacts to the votes as in production."""
    now = timezone.now()
    session, _ = AnnotationSession.objects.get_or_create(
        project=item.project,
        annotator=annotator,
        defaults={"started_at": now, "expires_at": now + timedelta(hours=1), "max_tasks": 1000},
    )
    assignment = Assignment.objects.create(
        session=session,
        item=item,
        annotator=annotator,
        left_is_a=True,
        leased_at=now - timedelta(seconds=30),
        lease_expires_at=now + timedelta(minutes=10),
    )
    judgment_submit(assignment_id=assignment.pk, annotator_id=annotator.pk, choice=choice)


def _batch_left_by_early_annotators(seed: int):
    """A project whose one batch the early annotators have worked through; (project, {item id: kind})."""
    project = ProjectFactory(name=f"Late joiner {seed}", overlap=3, max_overlap=5, gold_rate=0, allow_tie=True)
    items = ItemFactory.create_batch(ITEMS, batch=BatchFactory(project=project))
    early = []
    for n in range(3):
        user = UserFactory(username=f"early-{seed}-{n}")
        member_add(project=project, username=user.username, role="annotator")
        early.append(user)
    kinds = [kind for kind, count in PLAN.items() for _ in range(count)]
    kinds += ["fresh"] * (ITEMS - len(kinds))
    random.Random(seed).shuffle(kinds)
    for item, kind in zip(items, kinds, strict=True):
        for annotator, choice in zip(early, VOTES.get(kind, []), strict=False):
            _judge_directly(item=item, annotator=annotator, choice=choice)
    return project, {item.pk: kind for item, kind in zip(items, kinds, strict=True)}


def _late_joiner_takes(*, client, project) -> list[int]:
    session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    taken = []
    for _ in range(TAKEN):
        shown = client.get(f"/api/v1/sessions/{session_id}/next/")
        assert shown.status_code == 200
        assignment_id = shown.json()["assignment_id"]
        taken.append(Assignment.objects.values_list("item_id", flat=True).get(pk=assignment_id))
        judged = client.post(f"/api/v1/assignments/{assignment_id}/judgment/", {"choice": "left"}, format="json")
        assert judged.status_code == 201
    return taken


def _sum_of_hypergeometrics(draws: list[tuple[int, int, int]]) -> np.ndarray:
    """The distribution of the total number of split items over independent draws of (population, split, taken)."""
    total = np.array([1.0])
    for population, split, taken in draws:
        total = np.convolve(total, stats.hypergeom(population, split, taken).pmf(np.arange(taken + 1)))
    return total


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_late_joiner_gets_split_items_at_their_share_of_the_open_items(monkeypatch):
    draws, split_taken, first_split_positions = [], 0, []
    for seed in SEEDS:
        # The engine's draws (sides, gold, which open item) from a seeded generator: the same run every time.
        monkeypatch.setattr(assignments, "_crypto", random.Random(1000 + seed))
        project, kind_of = _batch_left_by_early_annotators(seed)
        # The items open to the late joiner, as the database has them: all but the agreed ones.
        wanting = Item.objects.filter(batch__project=project, judgment_count__lt=F("extra_judgments") + 3)
        open_kinds = [kind_of[pk] for pk in wanting.values_list("pk", flat=True)]
        split_open = open_kinds.count("split")
        assert (len(open_kinds), split_open) == (ITEMS - PLAN["agreed"], PLAN["split"])

        late = UserFactory(username=f"late-{seed}")
        member_add(project=project, username=late.username, role="annotator")
        taken = _late_joiner_takes(client=_token_client(late), project=project)
        assert len(set(taken)) == TAKEN and all(kind_of[pk] != "agreed" for pk in taken)
        split = [position for position, pk in enumerate(taken) if kind_of[pk] == "split"]
        split_taken += len(split)
        first_split_positions.append(split[0] if split else TAKEN)
        draws.append((len(open_kinds), split_open, TAKEN))

    pmf = _sum_of_hypergeometrics(draws)
    observed = pmf[split_taken]
    # Two-sided: the probability, under a uniform draw, of a total at most as likely as the one observed.
    p_value = float(pmf[pmf <= observed * (1 + 1e-9)].sum())
    expected = sum(split * taken / population for population, split, taken in draws)
    assert p_value > ALPHA, (
        f"{split_taken} split items among {TAKEN * len(SEEDS)} served, {expected:.1f} expected from their share of "
        f"the open items (p = {p_value:.2g}); first split item at positions {first_split_positions}"
    )


def _annotator_who_has_seen(project, items, *, username: str) -> APIClient:
    """A member whose judged assignments cover `items` (each now one judgment further), and their token client."""
    user = UserFactory(username=username)
    member_add(project=project, username=username, role="annotator")
    now = timezone.now() - timedelta(days=1)  # a session of yesterday's, its break long over
    session = AnnotationSession.objects.create(
        project=project, annotator=user, started_at=now, expires_at=now, max_tasks=len(items)
    )
    Assignment.objects.bulk_create(
        Assignment(
            session=session,
            item=item,
            annotator=user,
            left_is_a=True,
            leased_at=now,
            lease_expires_at=now,
            judged_at=now,
        )
        for item in items
    )
    Item.objects.filter(pk__in=[item.pk for item in items]).update(judgment_count=F("judgment_count") + 1)
    return _token_client(user)


def _served_with_draws(monkeypatch, client, project, draws: list[int]) -> int:
    monkeypatch.setattr(assignments, "_order_draws", lambda: draws)
    session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    shown = client.get(f"/api/v1/sessions/{session_id}/next/")
    assert shown.status_code == 200
    return Assignment.objects.values_list("item_id", flat=True).get(pk=shown.json()["assignment_id"])


@pytest.fixture
def forty_items(project):
    project.gold_rate = 0
    project.save()
    return ItemFactory.create_batch(40, batch=BatchFactory(project=project))


def test_a_draw_lands_on_the_span_of_open_ids_and_the_first_takeable_one_wins(monkeypatch, project, forty_items):
    # Both databases' steps map the same draws to the same item: id = lowest open id + draw % span.
    done = forty_items[:5]  # complete: outside the span
    Item.objects.filter(pk__in=[i.pk for i in done]).update(judgment_count=3)
    client = _annotator_who_has_seen(project, forty_items[5:10], username="seen-some")
    lo, span = forty_items[5].pk, forty_items[-1].pk - forty_items[5].pk + 1
    # The first draw lands on an item the annotator has judged, the second on one they may take.
    draws = [2] + [span * 7 + 20] * assignments._PROBES
    assert _served_with_draws(monkeypatch, client, project, draws) == lo + 20


def test_when_every_draw_misses_one_of_the_open_items_is_taken_from_a_drawn_place(monkeypatch, project, forty_items):
    # The annotator has judged all but three items: draws that all land on their own items fall back to the list of
    # the three, from the place the last draw picks.
    left = [forty_items[7], forty_items[20], forty_items[33]]
    client = _annotator_who_has_seen(project, [i for i in forty_items if i not in left], username="seen-most")
    draws = [0] * assignments._PROBES + [3 * 11 + 2]  # every probe on the lowest id, which they judged; place 2
    assert _served_with_draws(monkeypatch, client, project, draws) == left[2].pk
