"""seed_demo: a friendly demo project through the real import, one user per role, and nothing doubled on a re-run."""

from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation.demo import LARGE_MODEL, SMALL_MODEL, demo_jsonl, demo_lines, demo_pairs
from annotation.demo.adversarial import EXACT_WORDS
from annotation.import_format import parse_line
from annotation.management.commands.seed_demo import BATCH_NAME, PROJECT_NAME
from annotation.models import Batch, CriteriaVersion, ImportRecord, Item, Membership, Project
from annotation.services.imports import stratum_mix_warnings


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--force", stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        "projects": Project.objects.count(),
        "criteria": CriteriaVersion.objects.count(),
        "batches": Batch.objects.count(),
        "items": Item.objects.count(),
        "gold": Item.objects.exclude(gold="").count(),
        "users": get_user_model().objects.count(),
        "memberships": Membership.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_twice_creates_everything_once():
    first = _seed()
    counts = _counts()
    second = _seed()

    assert _counts() == counts
    assert counts["projects"] == counts["batches"] == counts["criteria"] == 1
    assert 250 <= counts["items"] <= 400
    assert "skipped 0 already present" in first
    assert f"Imported 0 item(s) into {PROJECT_NAME} / {BATCH_NAME}; skipped {counts['items']}" in second
    # Both runs went through the import service and left their report.
    assert ImportRecord.objects.filter(status=ImportRecord.Status.IMPORTED).count() == 2
    assert "Warning" not in first + second  # the stratum mix is the usual one


@pytest.mark.django_db
def test_seed_demo_users_have_their_roles_and_new_passwords_each_run():
    first = _seed()
    project = Project.objects.get(name=PROJECT_NAME)
    users = {u.username: u for u in get_user_model().objects.prefetch_related("groups")}

    assert users["admin"].is_superuser and users["admin"].is_staff
    expected = {
        "lead": "lead",
        "mle": "ml_engineer",
        "annotator1": "annotator",
        "annotator2": "annotator",
        "annotator3": "annotator",
    }
    for username, role in expected.items():
        assert Membership.objects.get(project=project, user=users[username]).role == role
        assert [g.name for g in users[username].groups.all()] == [role]
        assert not users[username].is_superuser

    second = _seed()
    for username in ["admin", *expected]:
        password_1 = _password_in(first, username)
        password_2 = _password_in(second, username)
        assert password_1 != password_2
        user = get_user_model().objects.get(username=username)
        assert user.check_password(password_2) and not user.check_password(password_1)


def _password_in(output: str, username: str) -> str:
    row = next(line.split() for line in output.splitlines() if line.split()[:1] == [username])
    return row[-1]


@pytest.mark.django_db
def test_seed_demo_refuses_with_debug_off_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", stdout=StringIO())
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_seed_demo_items_include_gold_multi_turn_and_every_stratum():
    _seed()
    items = Item.objects.filter(project__name=PROJECT_NAME)
    gold = items.exclude(gold="")
    assert 0.05 <= gold.count() / items.count() <= 0.09
    assert set(gold.values_list("gold", flat=True)) == {"a", "b"}
    assert items.filter(messages__isnull=False).count() >= 20
    assert set(items.values_list("stratum", flat=True)) == {"usage", "synthetic", "adversarial"}
    assert {*items.values_list("response_a_model", flat=True)} == {SMALL_MODEL, LARGE_MODEL}


def test_demo_file_follows_the_import_contract_and_the_usual_mix():
    lines = demo_jsonl().read().splitlines()
    parsed = [parse_line(line, max_chars=100_000) for line in lines]  # raises on any line breaking the contract
    assert len({p.dedupe_key for p in parsed}) == len(parsed)
    strata = Counter(p.stratum for p in parsed)
    assert stratum_mix_warnings(dict(strata)) == []
    assert any("```" in p.response_a_text + p.response_b_text for p in parsed)  # some markdown / code


def test_demo_data_is_deterministic_and_gold_is_the_better_side():
    assert demo_lines() == demo_lines()
    better = {f"demo-{p.key}": p.better for pairs in demo_pairs().values() for p in pairs}
    for line in demo_lines():
        if "gold" in line:
            assert line[f"response_{line['gold']}"]["text"] == better[line["id"]]


@pytest.mark.parametrize(("count", "task", "answer"), [(c, t, a) for c, t, a, _ in EXACT_WORDS])
def test_exact_word_answers_have_exactly_that_many_words(count, task, answer):
    assert len(answer.split()) == count, task
