"""The judgment endpoint's hand-written checks and answer give exactly what its serializers would.

JudgmentSubmitApi validates the common body itself and builds its answer field by field (CPU on the annotator
loop, bench/annotator_loop.py); every other body goes through InputSerializer. Here each path is held to the
serializers: the same validated data for what the fast path accepts, and the same answer through the API.
"""

import pytest

from annotation.annotator_apis import JudgmentSubmitApi, _judgment_output, _plain_judgment
from annotation.models import Assignment, Judgment
from annotation.rules import to_canonical
from tests.factories import BatchFactory, ItemFactory

BODIES = [
    {"choice": "left"},
    {"choice": "right"},
    {"choice": "tie"},
    {"choice": "both_bad"},
    {"choice": "left", "dimensions": {}},
    {"choice": "right", "dimensions": {"honesty": "left", "clarity": "tie"}},
    # The page's body: a justification, often empty.
    {"choice": "left", "justification": "clearer"},
    {"choice": "left", "justification": ""},
    {"choice": "tie", "dimensions": {"honesty": "right"}, "justification": "  both fine \n"},
    {"choice": "left", "justification": "é" * 5000},
    # Everything below is the serializer's to decide: valid or not, the fast path must step aside.
    {"choice": "left", "justification": "x" * 5001},
    {"choice": "left", "justification": "a\x00b"},
    {"choice": "left", "justification": "\ud800"},
    {"choice": "left", "justification": 5},
    {"choice": "left", "justification": None},
    {"choice": "left", "extra": 1},
    {"choice": "LEFT"},
    {"choice": 1},
    {"choice": None},
    {"choice": ["left"]},
    {},
    {"dimensions": {"honesty": "left"}},
    {"choice": "left", "dimensions": {"honesty": "a"}},
    {"choice": "left", "dimensions": {"honesty": 1}},
    {"choice": "left", "dimensions": ["honesty"]},
    {"choice": "left", "dimensions": None},
    ["left"],
    "left",
]


@pytest.mark.parametrize("body", BODIES)
def test_fast_path_accepts_only_what_the_serializer_accepts_and_gives_the_same_data(body):
    serializer = JudgmentSubmitApi.InputSerializer(data=body)
    fast = _plain_judgment(body)
    if fast is not None:
        assert serializer.is_valid(), serializer.errors
        assert fast == dict(serializer.validated_data)
    # The plain bodies of the page and the benchmark do take the fast path.
    assert (fast is not None) == (body in BODIES[:10])


@pytest.mark.django_db
@pytest.mark.parametrize("left_is_a", [True, False])
@pytest.mark.parametrize("choice", ["left", "right", "tie"])
def test_answer_is_the_output_serializers_through_the_api(annotator_client, project, choice, left_is_a):
    ItemFactory(batch=BatchFactory(project=project))
    session_id = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    shown = annotator_client.get(f"/api/v1/sessions/{session_id}/next/").json()
    Assignment.objects.update(left_is_a=left_is_a)  # both sides of the blinding
    url = f"/api/v1/assignments/{shown['assignment_id']}/judgment/"
    created = annotator_client.post(url, {"choice": choice}, format="json")
    retried = annotator_client.post(url, {"choice": choice}, format="json")
    assert (created.status_code, retried.status_code) == (201, 200)
    stored = Judgment.objects.get()
    expected = dict(JudgmentSubmitApi.OutputSerializer(stored).data)
    assert created.json() == retried.json() == expected
    assert expected["choice"] == choice and expected["assignment_id"] == shown["assignment_id"]
    assert _judgment_output(stored) == expected
    assert stored.choice == to_canonical(choice, left_is_a=left_is_a)
