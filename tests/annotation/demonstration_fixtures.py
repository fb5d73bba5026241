"""Demonstration batches and the calls of a writer, shared by the demonstration tests."""

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Batch, Item
from tests.factories import BatchFactory, item_row

TEXT = "A careful answer that explains the steps one by one, with an example."


def demonstration_batch(project, *, prompts: int = 3, writers: int = 1, name: str = "writing") -> Batch:
    """An open demonstration batch of prompt-only items (the responses are what annotators write)."""
    batch = BatchFactory(project=project, name=name, kind=Batch.Kind.DEMONSTRATION, writers_per_item=writers)
    Item.objects.bulk_create(
        item_row(
            batch,
            n,
            {"prompt": f"Explain idea number {n} of {name} to a newcomer."},
            response_a_text="",
            response_b_text="",
        )
        for n in range(prompts)
    )
    return batch


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def start(client, project, kind: str = "demonstration") -> int:
    response = client.post(f"/api/v1/projects/{project.pk}/sessions/", {"kind": kind}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()["id"]


def next_of(client, session_id: int):
    return client.get(f"/api/v1/sessions/{session_id}/next/")


def write(client, assignment_id: str, text: str = TEXT):
    return client.post(f"/api/v1/assignments/{assignment_id}/demonstration/", {"text": text}, format="json")
