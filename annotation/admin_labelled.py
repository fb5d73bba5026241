"""The admin's labelled-source import page (docs/LABELLED_DATA.md), reached from a project's page: the form queues
the import as a job (annotation.jobs_labelled), then the page follows the job to its report, as the item import's
page does. ProjectAdmin.get_urls names it."""

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse

from annotation.jobs_labelled import KIND, labelled_import_submit
from annotation.labelled_format import FORMATS
from annotation.models import Batch, Project
from annotation.services import ImportRejected
from annotation.services.labelled import LabelledImportReport
from core.authz import Action, check
from core.jobs import job_get_for, job_progress

FORMAT_LABELS = dict(Batch.SourceFormat.choices)


class LabelledImportForm(forms.Form):
    source = forms.CharField(max_length=200, help_text="The labelled source's name; made if it does not exist.")
    file = forms.FileField(help_text="JSONL or .jsonl.gz, one judged pair (or demonstration) a line.")
    format = forms.ChoiceField(
        required=False,
        choices=[("", "Tell from the first line"), *((f, FORMAT_LABELS[f]) for f in FORMATS)],
        help_text="See docs/LABELLED_DATA.md for each format and its rules.",
    )


def labelled_import_view(model_admin, request, project_id: int):
    project = get_object_or_404(Project, pk=project_id)
    check(user=request.user, action=Action.IMPORT_ITEMS, project=project, what="import labelled data")
    form = LabelledImportForm(request.POST or None, request.FILES or None)
    report, job = None, None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = labelled_import_submit(
                project=project,
                source_name=form.cleaned_data["source"],
                upload=upload,
                format=form.cleaned_data["format"] or None,
                created_by=request.user,
            )
        except ImportRejected as exc:
            report = exc.report
            model_admin.message_user(request, report.summary(), messages.ERROR)
        else:
            model_admin.message_user(request, f"Import of {upload.name} queued (job {job.pk}).", messages.INFO)
            return redirect(f"{request.path}?job={job.pk}")
    elif (job_id := request.GET.get("job", "")).isdigit() and len(job_id) <= 18:
        job = job_get_for(user=request.user, job_id=int(job_id), kind=KIND)
        if job.project_id != project.pk:
            raise Http404("No such import.")
        report = LabelledImportReport(**job.result) if job.result else None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Import labelled data into {project.name}",
        "project": project,
        "form": form,
        "report": report,
        "job": job,
        "progress": job_progress(job=job) if job is not None else None,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/annotation/project/import_labelled.html", context)
