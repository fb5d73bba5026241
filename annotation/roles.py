"""What each role's Django group may do in the admin site, declared by each app for its own models.

Leads and ML engineers work in the admin (leads import, add members and close batches; ML engineers make dataset
snapshots and start runs), so the membership services make them staff, and their groups hold the model permissions
each app declares here. The groups mirror roles for Django's own views; which rows and actions a user reaches in a
project is decided by core.authz, never by these global permissions alone. Permissions exist only after migrate has run (Django creates them in post_migrate), so every app
grants its own from its AppConfig.ready() through post_migrate: annotation knows nothing of the apps above it.
"""

from collections.abc import Mapping, Sequence

from django.db.models.signals import post_migrate


def grant_on_migrate(app_config, grants: Mapping[str, Sequence[str]]) -> None:
    """After each migrate, give group NAME the permissions "codename" (of this app) listed under it."""

    def grant(sender, using="default", **kwargs) -> None:
        from django.contrib.auth.models import Group, Permission

        for group_name, codenames in grants.items():
            group, _ = Group.objects.using(using).get_or_create(name=group_name)
            permissions = Permission.objects.using(using).filter(
                content_type__app_label=app_config.label, codename__in=list(codenames)
            )
            group.permissions.add(*permissions)

    post_migrate.connect(grant, sender=app_config, weak=False, dispatch_uid=f"roles.grant.{app_config.label}")
