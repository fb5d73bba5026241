"""python manage.py remove_members --project NAME USER..."""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services import member_remove
from annotation.services.members import MemberError


class Command(BaseCommand):
    help = "Remove users from a project; their role groups and admin access follow at once."

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="+")
        parser.add_argument("--project", required=True)

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}.")
        failed = []
        for username in options["usernames"]:
            try:
                removed = member_remove(project=project, username=username)
            except MemberError as exc:
                failed.append(str(exc))
                continue
            if removed:
                self.stdout.write(f"Removed {username} from {project.name}.")
            else:
                failed.append(f"{username} is not a member of {project.name}.")
        if failed:
            raise CommandError(" ".join(failed))
