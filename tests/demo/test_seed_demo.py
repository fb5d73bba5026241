"""seed_demo: a friendly demo project through the real import, one user per role, a judged and closed history batch,
and nothing doubled on a re-run; `agreement` then fills the lead's dashboard; demo_model builds the demo base model."""

import json
import re
from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.test import Client

from annotation.import_format import parse_line
from annotation.models import (
    AnnotationSession,
    Assignment,
    Batch,
    CriteriaVersion,
    ImportRecord,
    Item,
    Judgment,
    Membership,
    Project,
)
from annotation.services.imports import stratum_mix_warnings
from demo.data import DEMONSTRATION_PROMPTS, LARGE_MODEL, SMALL_MODEL, demo_jsonl, demo_lines, demo_pairs
from demo.data.adversarial import EXACT_WORDS
from demo.data.history import HISTORY_ITEMS, SIM_ANNOTATORS
from demo.management.commands.seed_demo import BATCH_NAME, HISTORY_BATCH_NAME, PROJECT_NAME


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
        "sessions": AnnotationSession.objects.count(),
        "assignments": Assignment.objects.count(),
        "judgments": Judgment.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_twice_creates_everything_once():
    first = _seed()
    counts = _counts()
    second = _seed()

    assert _counts() == counts
    assert counts["projects"] == counts["criteria"] == 1
    assert counts["batches"] == 3  # the open batch, the judged history and the prompts to answer in writing
    open_items = Item.objects.filter(batch__name=BATCH_NAME).count()
    assert 250 <= open_items <= 400
    assert counts["items"] == open_items + HISTORY_ITEMS + sum(DEMONSTRATION_PROMPTS.values())
    assert "skipped 0 already present" in first
    assert f"Imported 0 item(s) into {PROJECT_NAME} / {BATCH_NAME}; skipped {open_items}" in second
    # Both runs imported the open batch and the writing prompts through the import service; the history once.
    assert ImportRecord.objects.filter(status=ImportRecord.Status.IMPORTED).count() == 5
    assert f"Batch '{HISTORY_BATCH_NAME}' is already there" in second
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
    items = Item.objects.filter(project__name=PROJECT_NAME).exclude(batch__kind=Batch.Kind.DEMONSTRATION)
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


@pytest.mark.django_db
def test_seed_demo_history_batch_is_judged_within_overlap_and_closed():
    _seed()
    project = Project.objects.get(name=PROJECT_NAME)
    history = Batch.objects.get(project=project, name=HISTORY_BATCH_NAME)
    open_batch = Batch.objects.get(project=project, name=BATCH_NAME)
    assert history.status == Batch.Status.CLOSED and history.closed_at is not None
    assert open_batch.status == Batch.Status.OPEN and not open_batch.judgments.exists()
    assert history.created_at < open_batch.created_at  # the earlier batch: the open one's baseline

    sims = [a.username for a in SIM_ANNOTATORS]
    judgments = Judgment.objects.filter(batch=history)
    assert set(judgments.values_list("annotator__username", flat=True)) == set(sims)
    for username in sims:
        user = get_user_model().objects.get(username=username)
        assert not user.has_usable_password()
        assert Membership.objects.get(project=project, user=user).role == "annotator"

    items = Item.objects.filter(batch=history).annotate(n=Count("judgments"))
    assert items.count() == HISTORY_ITEMS
    for item in items:
        assert item.judgment_count == item.n
        if item.gold:  # gold has no cap: every simulated annotator met it
            assert item.n == len(sims)
        else:  # overlap honoured, split items got their adaptive extra votes and no more
            assert item.n == project.overlap + item.extra_judgments <= project.max_overlap
    assert items.filter(extra_judgments__gt=0).exists()
    assert items.filter(judgment_count=0).count() == 0

    # What judgment_submit would have stored, with times of a real working day in the past.
    for j in judgments.select_related("assignment", "item"):
        assert j.assignment.judged_at == j.created_at < open_batch.created_at
        assert j.shown_left == ("a" if j.assignment.left_is_a else "b")
        assert j.is_gold == bool(j.item.gold)
        assert j.gold_correct == ((j.choice == j.item.gold) if j.item.gold else None)
        assert j.too_fast == (j.seconds < project.min_seconds_per_judgment)
    assert judgments.filter(too_fast=True).exists() and judgments.filter(seconds__gt=20).exists()
    assert {"a", "b", "tie"} <= set(judgments.values_list("choice", flat=True))
    for session in AnnotationSession.objects.filter(project=project):
        assert session.tasks_done == session.assignments.count() <= session.max_tasks


@pytest.mark.django_db
def test_lead_sees_the_history_figures_after_agreement():
    out = StringIO()
    _seed()
    call_command("agreement", "--project", PROJECT_NAME, "--json", stdout=out)
    report = json.loads(out.getvalue())
    history = next(b for b in report["batches"] if b["batch"] == HISTORY_BATCH_NAME)
    assert history["judgments"] == Judgment.objects.filter(batch_id=history["batch_id"]).count()
    assert history["annotator_count"] == len(SIM_ANNOTATORS)
    assert 0.4 < history["cohen_kappa"] < 0.9  # mostly agreeing, not perfectly
    left = {a["username"]: a["left_share"] for a in history["annotators"]}
    assert max(left, key=left.get) == "sim-ann4"  # the one who leans left shows it

    client = Client()
    client.force_login(get_user_model().objects.get(username="lead"))
    project = Project.objects.get(name=PROJECT_NAME)
    html = client.get(f"/lead/projects/{project.pk}/").content.decode()
    assert 'id="not-computed"' not in html
    row = re.search(rf'<tr[^>]*data-batch="{history["batch_id"]}">(.*?)</tr>', html, re.S).group(1)
    assert HISTORY_BATCH_NAME in row
    assert f">{history['judgments']:,}<" in row
    assert f">{history['cohen_kappa']:.2f}<" in row


@pytest.mark.django_db
def test_demo_model_builds_a_loadable_model_once(settings, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings.VAR_DIR = str(tmp_path)
    out = StringIO()
    call_command("demo_model", stdout=out)
    path = tmp_path / "models" / "tiny-demo"
    assert out.getvalue().strip() == f"Base model for demo runs: {path}"
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompt = demo_lines()[0].get("prompt") or demo_lines()[0]["messages"][0]["content"]
    ids = tokenizer(prompt)["input_ids"]
    assert tokenizer.unk_token_id not in ids and len(ids) < len(prompt)  # the tokenizer was fitted to demo text
    assert model(**tokenizer(prompt, return_tensors="pt")).logits.shape[-1] == len(tokenizer)

    stamp = (path / "model.safetensors").stat().st_mtime_ns
    again = StringIO()
    call_command("demo_model", stdout=again)
    assert "(already there)" in again.getvalue()
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny-demo"]  # no scratch folder left behind

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(CommandError, match="not a complete model"):
        call_command("demo_model", "--out", str(tmp_path / "half"), stdout=StringIO())


@pytest.mark.django_db
def test_seed_demo_has_prompts_to_answer_in_writing_in_the_usual_mix():
    _seed()
    batch = Batch.objects.get(project__name=PROJECT_NAME, kind=Batch.Kind.DEMONSTRATION, status=Batch.Status.OPEN)
    items = batch.items.all()
    assert items.count() == sum(DEMONSTRATION_PROMPTS.values())
    assert all(not item.response_a_text and not item.response_b_text and not item.gold for item in items)
    assert stratum_mix_warnings(Counter(items.values_list("stratum", flat=True))) == []
    comparison_prompts = set(Item.objects.exclude(batch=batch).values_list("prompt", flat=True)) - {""}
    assert {item.prompt for item in items if item.prompt} <= comparison_prompts  # the demo's own prompts
