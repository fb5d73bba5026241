from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"
    default = True


class TandemAdminConfig(admin_apps.AdminConfig):
    """Installed instead of django.contrib.admin, so that admin.site is core.admin's project-scoped site."""

    default = False
    default_site = "core.admin.TandemAdminSite"
