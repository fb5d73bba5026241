"""python manage.py add_members --project NAME --role annotator USER..."""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project, Role
from annotation.services import member_add
from annotation.services.members import MemberError


class Command(BaseCommand):
    help = "Add users to a project with a role (or change their role)."

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="+")
        parser.add_argument("--project", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}.")
        failed = []
        for username in options["usernames"]:
            try:
                _, created = member_add(project=project, username=username, role=options["role"])
            except MemberError as exc:
                failed.append(str(exc))
                continue
            verb = "Added" if created else "Updated"
            self.stdout.write(f"{verb} {username} as {options['role']} on {project.name}.")
        if failed:
            raise CommandError(" ".join(failed))
