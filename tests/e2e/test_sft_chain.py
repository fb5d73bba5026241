"""Issue 15 end to end: annotators write demonstrations in the browser (a reload keeps the draft), a lead reviews them
in the browser (accept, edit then accept, reject), an ML engineer makes an SFT snapshot, an SFT run on a real worker
lowers validation perplexity on a tiny model, a DPO run starts from the SFT run (its base model and its reference),
and the DPO run's page shows the whole chain back to the writers and the reviewer.

The bulk of the writing and reviewing goes through the same API the pages call, so that the SFT run has enough rows
to learn the pattern (each answer repeats the prompt's word three times); everything else is what a person does.
"""

import re

import pytest
from playwright.sync_api import expect

from annotation.models import Batch, Demonstration, Item
from annotation.services import member_add
from tests.annotation.demonstration_fixtures import next_of, start, token_client, write
from tests.core.jobs import follow_job
from tests.e2e.conftest import PASSWORD, log_in
from tests.factories import BatchFactory, ProjectFactory, UserFactory
from tests.trainer.runs_fixtures import make_snapshot
from tests.trainer.sft_fixtures import pattern_answer
from tests.trainer.test_e2e_training import final_run
from trainer.models import Status

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PROMPTS = 36
QUICK = {"batch_size": 4, "eval_batch_size": 4, "max_length": 64, "time_limit_seconds": 300}
REJECTED = "Not what the prompt asked: repeat the word three times."


def answer_for(prompt: str) -> str:
    number = int(re.search(r"number (\d+)", prompt).group(1))
    return pattern_answer(number)[1]


@pytest.fixture
def chain(transactional_db):
    project = ProjectFactory(name="Chain", gold_rate=0, demonstration_min_chars=5, demonstration_max_chars=200)
    people = {}
    for username, role in [("wanda", "annotator"), ("walt", "annotator"), ("lead", "lead"), ("mle", "ml_engineer")]:
        people[username] = UserFactory(username=username, password=PASSWORD)
        member_add(project=project, username=username, role=role)
    batch = BatchFactory(project=project, name="demos", kind=Batch.Kind.DEMONSTRATION)
    Item.objects.bulk_create(
        Item(
            project=project,
            batch=batch,
            external_id=f"demo-{n}",
            dedupe_key=f"id:demo-{n}",
            prompt=pattern_answer(n)[0],
            response_a_text="",
            response_b_text="",
        )
        for n in range(PROMPTS)
    )
    return project, batch, people


def write_in_the_browser(page, count: int) -> None:
    page.get_by_role("link", name="Write demonstrations for Chain").click()
    for n in range(count):
        expect(page.locator("#writer")).to_have_attribute("data-state", "item")
        prompt = page.locator("#prompt").inner_text()
        answer = answer_for(prompt)
        if n == 0:  # half the answer, a reload, the draft is still there
            page.locator("#draft").fill(answer[:6])
            expect(page.locator("#draft-state")).to_have_text("Draft saved in this browser.")
            page.reload()
            expect(page.locator("#draft")).to_have_value(answer[:6])
            expect(page.locator("#draft-state")).to_have_text("Draft restored from this browser.")
        page.locator("#draft").fill(answer)
        page.locator("#draft").press("Control+Enter")
        expect(page.locator("#progress")).to_have_text(f"{n + 1} / 200 written")


def write_the_rest_through_the_api(project, writers) -> None:
    for writer in writers:
        client = token_client(writer)
        session_id = start(client, project)
        while (shown := next_of(client, session_id)).status_code == 200:
            body = shown.json()
            assert write(client, body["assignment_id"], answer_for(body["prompt"])).status_code == 201
        assert shown.status_code == 204, shown.content


def test_demonstrations_become_an_sft_model_that_dpo_starts_from(page, chain, celery_worker_process, tiny_model_dir):
    project, batch, people = chain

    # 1. Annotators write: three in the browser (one across a reload), the rest through the API.
    log_in(page, "wanda")
    write_in_the_browser(page, 3)
    write_the_rest_through_the_api(project, [people["walt"], people["wanda"]])
    assert Demonstration.objects.filter(batch=batch).count() == PROMPTS
    assert Demonstration.objects.filter(writer=people["wanda"]).count() >= 3

    # 2. The lead reviews in the browser: accepts one, edits and accepts one, rejects one; the rest by the API.
    page.context.clear_cookies()
    log_in(page, "lead")
    page.goto(f"/lead/projects/{project.pk}/")
    page.get_by_role("link", name="Demonstrations").click()
    page.wait_for_url("**/demonstrations/")
    cards = page.locator("article.demonstration")
    expect(cards.first).to_be_visible()
    cards.nth(0).get_by_role("button", name="Accept").click()
    expect(page.locator(".review-message")).to_contain_text("accepted")
    edited = cards.nth(0).locator("textarea.editor")
    edited.fill(edited.input_value() + " ")  # a trailing space: an edit, and still the pattern
    cards.nth(0).get_by_role("button", name="Accept with edits").click()
    expect(page.locator(".review-message")).to_contain_text("accepted")
    cards.nth(0).locator("input.reason").fill(REJECTED)
    cards.nth(0).get_by_role("button", name="Reject").click()
    expect(page.locator(".review-message")).to_contain_text("rejected")
    reviewed = Demonstration.objects.exclude(status=Demonstration.Status.PENDING)
    assert sorted(reviewed.values_list("status", flat=True)) == ["accepted", "accepted", "rejected"]
    assert reviewed.filter(status="accepted").exclude(edited_text="").count() == 1
    lead_client = token_client(people["lead"])
    for pending in Demonstration.objects.filter(status=Demonstration.Status.PENDING):
        answer = lead_client.post(f"/api/v1/demonstrations/{pending.pk}/review/", {"decision": "accept"}, format="json")
        assert answer.status_code == 200, answer.content

    # 3. The ML engineer: an SFT snapshot of the accepted demonstrations, then an SFT run on the worker.
    engineer = token_client(people["mle"])
    made = engineer.post(
        f"/api/v1/projects/{project.pk}/datasets/",
        {"kind": "sft", "batches": [batch.pk], "validation_fraction": 0.2},
        format="json",
    )
    snapshot = follow_job(engineer, made)["result"]
    assert snapshot["counts"]["train"] + snapshot["counts"]["validation"] == PROMPTS - 1
    assert snapshot["counts"]["excluded"] == 1
    config = {"base_model": str(tiny_model_dir), **QUICK, "learning_rate": 1e-3, "epochs": 2}
    started = engineer.post(
        "/api/v1/runs/", {"kind": "sft", "snapshot": snapshot["id"], "config": config}, format="json"
    )
    assert started.status_code == 201, started.content
    sft = final_run(started.json()["id"])
    assert sft.status == Status.SUCCEEDED, sft.error + sft.error_traceback
    assert sft.evaluation["validation_perplexity"] < sft.evaluation["base_validation_perplexity"], sft.evaluation

    # 4. DPO on preference pairs, started from the SFT run: its base model and its reference.
    pairs = make_snapshot(project)
    dpo_config = {"base_model": f"run:{sft.pk}", **QUICK, "max_steps": 3}
    started = engineer.post("/api/v1/runs/", {"kind": "dpo", "snapshot": pairs.pk, "config": dpo_config}, format="json")
    assert started.status_code == 201, started.content
    dpo = final_run(started.json()["id"])
    assert dpo.status == Status.SUCCEEDED, dpo.error + dpo.error_traceback
    assert dpo.lineage["reference_model"] == f"run:{sft.pk}"
    assert dpo.lineage["base_run"]["id"] == sft.pk
    assert set(dpo.lineage["base_run"]["demonstrations"]["writers"]) == {"wanda", "walt"}
    assert set(dpo.lineage["base_run"]["demonstrations"]["reviewers"]) == {"lead"}

    # 5. The DPO run's page, as the ML engineer sees it: the SFT run it started from, the writers and the reviewer.
    page.context.clear_cookies()
    log_in(page, "mle")
    page.goto(f"/runs/{dpo.pk}/")
    expect(page.locator(f'a[href="/runs/{sft.pk}/"]').first).to_be_visible()
    for name in ("wanda", "walt", "lead"):
        expect(page.locator("main")).to_contain_text(name)
    page.locator(f'a[href="/runs/{sft.pk}/"]').first.click()
    page.wait_for_url(f"**/runs/{sft.pk}/")
    expect(page.locator("main")).to_contain_text("perplexity")
