"""The admin's way to make an evaluation batch: select a generation run (or two) on an evaluation set, say which is
the candidate and which the baseline, and evaluation.services.eval_batches makes the batch (as the API and
`manage.py make_eval_batch` do).

The action goes on the admin of Sampled (generation runs on evaluation sets), which evaluation/admin.py registers.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from core.admin import project_action
from core.authz import Action
from core.errors import TandemError
from evaluation.models import Sampled
from evaluation.services.eval_batches import eval_batch_make

# Generation runs on the set offered as candidate or baseline, newest first (the selected ones always).
RUNS_OFFERED = 200


class EvaluationBatchForm(forms.Form):
    candidate = forms.TypedChoiceField(coerce=int, help_text="The model being evaluated.")
    baseline = forms.TypedChoiceField(coerce=int, help_text="What it is judged against: base, SFT, an earlier one.")
    name = forms.CharField(
        max_length=200,
        required=False,
        help_text="Default eval-<set>-v<version>-<n>. Annotators never see it; name no model in it anyway.",
    )

    def __init__(self, *args, runs: list[Sampled], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(s.pk, f"{s.label} (run {s.run_id}, {s.run.get_status_display().lower()})") for s in runs]
        self.fields["candidate"].choices = self.fields["baseline"].choices = choices

    def clean(self):
        data = super().clean()
        if data.get("candidate") is not None and data.get("candidate") == data.get("baseline"):
            raise forms.ValidationError("The candidate and the baseline must be two different runs.")
        return data


@project_action(action=Action.MANAGE_EVALUATION, description="Make an evaluation batch (candidate against baseline)")
def make_evaluation_batch(modeladmin, request, queryset):
    """Select the candidate (or the candidate and its baseline) among the generation runs of one evaluation set; an
    intermediate page asks for the other side and a name, then evaluation's service makes the batch."""
    selected = list(queryset.select_related("run", "eval_set", "eval_set__project").order_by("-created_at", "-pk"))
    if not 1 <= len(selected) <= 2 or len({s.eval_set_id for s in selected}) != 1:
        modeladmin.message_user(
            request,
            "Select one generation run (the candidate) or two (candidate and baseline) on one evaluation set.",
            messages.ERROR,
        )
        return None
    eval_set = selected[0].eval_set
    others = (
        Sampled.objects.filter(eval_set=eval_set)
        .exclude(pk__in=[s.pk for s in selected])
        .select_related("run")
        .order_by("-created_at", "-pk")[:RUNS_OFFERED]
    )
    runs = [*selected, *others]
    initial = {"candidate": selected[0].pk, "baseline": selected[1].pk if len(selected) == 2 else None}
    form = EvaluationBatchForm(request.POST if "apply" in request.POST else None, runs=runs, initial=initial)
    if form.is_valid():
        by_pk = {s.pk: s for s in runs}
        candidate, baseline = by_pk[form.cleaned_data["candidate"]], by_pk[form.cleaned_data["baseline"]]
        try:
            evaluation = eval_batch_make(
                candidate=candidate,
                baseline=baseline,
                name=form.cleaned_data["name"] or None,
                created_by=request.user,
            )
        except TandemError as exc:
            modeladmin.message_user(request, f"Refused: {exc.detail} Nothing was made.", messages.ERROR)
            return None
        batch = evaluation.batch
        modeladmin.message_user(
            request,
            f"Evaluation batch {evaluation.pk} made: batch {batch.name!r} with {evaluation.items.count()} item(s), "
            f"{candidate.label} (candidate) against {baseline.label} (baseline), served to annotators now.",
            messages.SUCCESS,
        )
        return redirect("admin:annotation_batch_change", batch.pk)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Make an evaluation batch on {eval_set}",
        "eval_set": eval_set,
        "selected": selected,
        "form": form,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/evaluation/make_evaluation_batch.html", context)


def _add_action() -> None:
    """evaluation/admin.py registers the admin of Sampled and imports this module last: the same admin, with this
    action added (as rewards/admin.py adds its export action to annotation's Batch admin)."""
    registered = type(admin.site._registry[Sampled])
    if make_evaluation_batch in (registered.actions or ()):
        return
    extended = type(
        registered.__name__, (registered,), {"actions": [*(registered.actions or ()), make_evaluation_batch]}
    )
    admin.site.unregister(Sampled)
    admin.site.register(Sampled, extended)


_add_action()
