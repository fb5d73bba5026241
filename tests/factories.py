"""factory_boy factories for the domain. Projects go through the service so they get criteria version 1."""

import factory
from django.contrib.auth import get_user_model

from annotation.models import Batch, Item, Membership, Project
from annotation.services import project_create
from annotation.services.projects import project_current_criteria


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "pw-for-tests")
        if create:
            self.save(update_fields=["password"])


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"project {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return project_create(**kwargs)


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"batch {n}")
    criteria_version = factory.LazyAttribute(lambda o: project_current_criteria(project=o.project))


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    batch = factory.SubFactory(BatchFactory)
    project = factory.LazyAttribute(lambda o: o.batch.project)
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    dedupe_key = factory.LazyAttribute(lambda o: f"id:{o.external_id}")
    prompt = factory.Sequence(lambda n: f"Prompt number {n}?")
    response_a_text = factory.Sequence(lambda n: f"First answer {n}.")
    response_a_model = "model-alpha"
    response_b_text = factory.Sequence(lambda n: f"Second answer {n}, longer than the first.")
    response_b_model = "model-beta"
    stratum = "usage"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = "annotator"


def item_row(batch: Batch, n: int, spec: dict, **fields) -> Item:
    """Item number `n` of `batch`, unsaved: external id "<batch name>-<n>", the "prompt" or "messages" of `spec`,
    then `fields` (responses, labels...)."""
    return Item(
        project=batch.project,
        batch=batch,
        external_id=f"{batch.name}-{n}",
        dedupe_key=f"id:{batch.name}-{n}",
        prompt=spec.get("prompt", ""),
        messages=spec.get("messages"),
        **fields,
    )
