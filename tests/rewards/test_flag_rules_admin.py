"""A lead edits the flag rules in a form, one labelled field per rule with what it does: no raw JSON, no Python class
names. The row stores every rule, so a project keeps its thresholds when the defaults change."""

import pytest
from django.test import Client

from rewards.metrics.flags import FLAG_RULE_HELP, FlagRules
from rewards.models import ProjectFlagRules

pytestmark = pytest.mark.django_db
ADD = "/admin/rewards/projectflagrules/add/"


def form_data(page) -> dict:
    """The form as the page offers it: every field's initial value."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.get_initial_for_field(field, name)
        data[name] = "" if value is None else value
    return data


def test_a_lead_edits_each_rule_in_its_own_field(lead, project):
    client = Client()
    client.force_login(lead)
    page = client.get(ADD)
    html = page.content.decode()
    assert page.status_code == 200
    assert "rewards.metrics" not in html and "FlagRules" not in html
    for name, help_text in FLAG_RULE_HELP.items():
        assert help_text in html, name
    assert 'name="position_band__low"' in html and 'name="verbosity_reference"' in html

    data = form_data(page) | {"project": project.pk, "batch_kappa_warn": "0.55", "annotator_kappa_warn": ""}
    response = client.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    rules = ProjectFlagRules.objects.get(project=project).rules
    expected = FlagRules.from_dict({"batch_kappa_warn": 0.55, "annotator_kappa_warn": None}).to_dict()
    assert rules == expected  # every rule stored, the edited ones changed, an emptied one off


def test_bad_values_are_refused_on_their_field(lead, project):
    client = Client()
    client.force_login(lead)
    data = form_data(client.get(ADD)) | {"project": project.pk}
    response = client.post(ADD, data | {"gold_alpha": "1.5", "position_band__low": "0.7", "position_band__high": "0.3"})
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"gold_alpha", "position_band__high"}, errors
    assert not ProjectFlagRules.objects.exists()
