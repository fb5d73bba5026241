"""The Django admin for the annotation domain: every page loads for a superuser, and the import page works."""

import json
import time

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from annotation.models import Batch, ImportRecord, Item, Project
from annotation.services import batch_get_or_create, items_import
from core.models import Job
from tests.core.jobs import run_queued_jobs
from tests.factories import ItemFactory

ANNOTATION_ADMINS = [
    (model, model_admin) for model, model_admin in admin.site._registry.items() if model._meta.app_label == "annotation"
]
# The models an import fills; the annotator loop's tables get their change pages tested with that loop.
IMPORT_MODELS = [
    (m, a)
    for m, a in ANNOTATION_ADMINS
    if m.__name__ in {"Project", "CriteriaVersion", "Batch", "Item", "Membership", "ImportRecord"}
]


def admin_url(model, page: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


@pytest.fixture
def populated(project, annotator, tmp_path):
    """At least one row of every annotation model, so change pages and list columns have something to render."""
    batch, _ = batch_get_or_create(project=project, name="b1")
    ItemFactory(batch=batch, messages=[{"role": "user", "content": "<script>alert(1)</script>"}], prompt="")
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"prompt": "p", "response_a": {"text": "a"}, "response_b": {"text": "b"}}) + "\n")
    with path.open("rb") as source:
        items_import(project=project, batch_name="b1", source=source, filename="items.jsonl")
    return project


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def test_every_annotation_model_is_in_the_admin():
    names = {model.__name__ for model, _ in ANNOTATION_ADMINS}
    assert names >= {"Project", "CriteriaVersion", "Batch", "Item", "Membership", "ImportRecord"}


@pytest.mark.parametrize(("model", "model_admin"), ANNOTATION_ADMINS, ids=lambda x: getattr(x, "__name__", "admin"))
def test_changelists_load(model, model_admin, admin_client, populated):
    assert admin_client.get(admin_url(model, "changelist")).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), IMPORT_MODELS, ids=lambda x: getattr(x, "__name__", "admin"))
def test_change_pages_load(model, model_admin, admin_client, populated):
    obj = model.objects.first()
    assert obj is not None, f"the fixture made no {model.__name__}"
    assert admin_client.get(admin_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), ANNOTATION_ADMINS, ids=lambda x: getattr(x, "__name__", "admin"))
def test_add_pages_load(model, model_admin, admin_client, rf, superuser, populated):
    request = rf.get("/")
    request.user = superuser
    response = admin_client.get(admin_url(model, "add"))
    if model_admin.has_add_permission(request):
        assert response.status_code == 200
    else:
        assert response.status_code == 403  # e.g. import records are only made by imports


def test_changelist_search_and_filters_load(admin_client, populated):
    assert admin_client.get(admin_url(Item, "changelist"), {"q": "Prompt", "stratum": "usage"}).status_code == 200
    assert admin_client.get(admin_url(Project, "changelist"), {"q": "Demo"}).status_code == 200


def test_model_text_is_escaped_in_the_admin(admin_client, populated):
    item = Item.objects.exclude(messages=None).get()
    html = admin_client.get(admin_url(Item, "change", item.pk)).content.decode()
    assert "<script>alert(1)</script>" not in html


def test_project_added_in_the_admin_gets_criteria_version_1(admin_client):
    page = admin_client.get(admin_url(Project, "add"))
    # Submit the form as the page offers it (every default), with only a name typed in.
    data = {}
    for name, field in page.context["adminform"].form.fields.items():
        value = page.context["adminform"].form.get_initial_for_field(field, name)
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        data[f"{inline.formset.prefix}-TOTAL_FORMS"] = 0
        data[f"{inline.formset.prefix}-INITIAL_FORMS"] = 0
    data["name"] = "From the admin"
    response = admin_client.post(admin_url(Project, "add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    project = Project.objects.get(name="From the admin")
    assert [v.number for v in project.criteria_versions.all()] == [1]
    assert project.identity_leak_patterns == []

    # Identity-leak patterns: a JSON list of names, nothing else.
    data["name"] = "With patterns"
    data["identity_leak_patterns"] = '{"GPT": 1}'
    response = admin_client.post(admin_url(Project, "add"), data)
    assert response.status_code == 200 and "A JSON list of names" in response.content.decode()
    data["identity_leak_patterns"] = '[" GPT ", "OpenAI"]'
    assert admin_client.post(admin_url(Project, "add"), data).status_code == 302
    assert Project.objects.get(name="With patterns").identity_leak_patterns == ["GPT", "OpenAI"]


def test_project_page_links_to_the_import_page(admin_client, project):
    html = admin_client.get(admin_url(Project, "change", project.pk)).content.decode()
    assert reverse("admin:annotation_project_import", args=[project.pk]) in html


# --- The admin's import page ---------------------------------------------------------------------


def import_url(project) -> str:
    return reverse("admin:annotation_project_import", args=[project.pk])


def jsonl(*lines) -> bytes:
    return "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines).encode()


def good(n: int, **fields) -> dict:
    return {
        "id": f"adm-{n}",
        "prompt": f"Question {n}?",
        "response_a": {"text": f"Answer {n}."},
        "response_b": {"text": f"Other answer {n}."},
        "stratum": "usage",
        **fields,
    }


def test_import_page_loads(admin_client, project):
    response = admin_client.get(import_url(project))
    assert response.status_code == 200
    assert 'type="file"' in response.content.decode()


def import_job_page(admin_client, project, data: dict) -> str:
    """Submits the form (a job: back to the page with ?job=, which refreshes itself while it waits), runs the job as
    the worker would, and returns the page once the job has ended."""
    response = admin_client.post(import_url(project), data)
    assert response.status_code == 302, response.content
    job = Job.objects.latest("pk")
    assert response["Location"] == f"{import_url(project)}?job={job.pk}"
    waiting = admin_client.get(response["Location"]).content.decode()
    assert 'data-state="queued"' in waiting and 'http-equiv="refresh"' in waiting
    assert not Item.objects.filter(batch__name=data["batch"]).exists()  # nothing is imported inside the request
    assert run_queued_jobs() == [job.pk]
    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'http-equiv="refresh"' not in html
    return html


def test_import_page_imports_a_file(admin_client, project):
    upload = SimpleUploadedFile("items.jsonl", jsonl(good(1), good(2), good(3)))
    html = import_job_page(admin_client, project, {"batch": "from-admin", "file": upload})
    assert 'data-state="succeeded"' in html
    assert "Imported 3 item(s) into Demo / from-admin" in html
    assert "Stratum mix: usage 3" in html
    assert Item.objects.filter(batch__name="from-admin").count() == 3
    record = ImportRecord.objects.get()
    assert (record.status, record.filename, record.created_by.username) == ("imported", "items.jsonl", "root")


def test_import_page_shows_every_error_of_a_rejected_file(admin_client, project):
    body = jsonl(good(1), "{broken", good(3, stratum="organic"), good(4))
    html = import_job_page(admin_client, project, {"batch": "b1", "file": SimpleUploadedFile("bad.jsonl", body)})
    assert 'data-state="failed"' in html
    assert "Rejected: nothing was imported" in html
    assert '<tr class="import-error"><td>2</td><td>bad JSON' in html
    assert "<td>3</td><td>unknown stratum &#x27;organic&#x27;" in html
    assert not Item.objects.exists()
    assert ImportRecord.objects.get().status == "rejected"


def test_import_page_keeps_hh_gold_when_asked(admin_client, project):
    line = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}
    upload = SimpleUploadedFile("hh.jsonl", jsonl(line))
    import_job_page(admin_client, project, {"batch": "hh", "file": upload, "keep_hh_gold": "on"})
    item = Item.objects.get()
    assert (item.response_a_text if item.gold == "a" else item.response_b_text) == "Hello!"


def test_import_page_shows_a_running_jobs_progress(admin_client, project, settings, tmp_path):
    settings.ARTIFACTS_DIR = str(tmp_path)
    response = admin_client.post(import_url(project), {"batch": "b1", "file": SimpleUploadedFile("a.jsonl", b"{}\n")})
    job = Job.objects.get()
    Job.objects.filter(pk=job.pk).update(state="running", started_at=timezone.now())
    beat = tmp_path / "jobs" / f"{job.pk}.json"  # what the worker's heartbeat writes (core.jobs)
    beat.parent.mkdir()
    beat.write_text(json.dumps({"done": 50, "total": 200, "unit": "bytes", "at": time.time()}))
    html = admin_client.get(response["Location"]).content.decode()
    assert 'data-state="running"' in html and 'http-equiv="refresh"' in html
    assert '<progress max="1" value="0.250000"></progress>' in html and "25 % of the file read" in html


@pytest.mark.parametrize("limit", ["lines", "closed"])
def test_whole_file_errors_say_what_was_wrong_not_line_0(limit, admin_client, project, settings):
    if limit == "lines":
        settings.TANDEM_IMPORT_MAX_LINES = 2
        html = import_job_page(
            admin_client,
            project,
            {"batch": "b1", "file": SimpleUploadedFile("long.jsonl", jsonl(*map(good, range(3))))},
        )
        reason = "the file has more than the import limit of 2 lines"
    else:  # a closed batch is refused at once, before anything is queued
        admin_client.post(import_url(project), {"batch": "b1", "file": SimpleUploadedFile("a.jsonl", jsonl(good(1)))})
        run_queued_jobs()
        Batch.objects.filter(name="b1").update(status=Batch.Status.CLOSED)
        response = admin_client.post(
            import_url(project), {"batch": "b1", "file": SimpleUploadedFile("b.jsonl", jsonl(good(2)))}
        )
        assert response.status_code == 200
        assert Job.objects.count() == 1
        html = response.content.decode()
        reason = "batch &#x27;b1&#x27; is closed: import into an open batch"
    assert f'<tr class="import-error"><td>the whole file</td><td>{reason}</td></tr>' in html
    assert "<td>0</td>" not in html
    assert f"nothing was imported. {reason[:1].upper()}{reason[1:]}." in html


def test_import_page_is_for_staff_only(client, annotator, project):
    client.force_login(annotator)  # leads are staff (annotation.roles); annotators never enter the admin
    response = client.get(import_url(project))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_batch_kind_is_chosen_when_added_and_never_changed(admin_client, project):
    """An evaluation batch turned into a comparison batch would enter dataset snapshots: the kind is read-only once
    the batch exists, and the add form does not offer "evaluation" (evaluation.services makes those)."""
    from tests.factories import BatchFactory

    add = admin_client.get(admin_url(Batch, "add")).content.decode()
    assert 'name="kind"' in add and 'value="comparison"' in add and 'value="evaluation"' not in add
    batch = BatchFactory(project=project, name="eval", kind=Batch.Kind.EVALUATION)
    change = admin_client.get(admin_url(Batch, "change", batch.pk)).content.decode()
    assert 'name="kind"' not in change and "Evaluation" in change
    data = {"project": project.pk, "name": "eval", "status": "open", "kind": "comparison"}
    admin_client.post(admin_url(Batch, "change", batch.pk), data)
    batch.refresh_from_db()
    assert batch.kind == Batch.Kind.EVALUATION
