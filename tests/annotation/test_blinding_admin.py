"""Blinding holds in the admin for an annotator who is staff in another project: a crawl of every admin page they
can reach never shows their own project's model names, gold answers, sides or votes."""

import re
from collections import deque

import pytest
from django.test import Client

from tests.core.authz_world import build_world

pytestmark = pytest.mark.django_db

LINK = re.compile(r'href="(/admin/[^"#]*)"')


def _crawl(client: Client, start: list[str], limit: int = 400) -> dict[str, str]:
    seen, queue, pages = set(start), deque(start), {}
    while queue and len(pages) < limit:
        path = queue.popleft()
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        body = response.content.decode()
        pages[path] = body
        for link in LINK.findall(body):
            link = link.replace("&amp;", "&")
            if "logout" in link or "/delete/" in link or link in seen:
                continue
            seen.add(link)
            queue.append(link)
    return pages


def test_an_annotator_who_leads_elsewhere_sees_nothing_blinded_of_their_own_project(settings, tmp_path):
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    world = build_world()
    own = world.projects["own"]
    client = Client()
    client.force_login(world.users["annotator_staff_elsewhere"])
    # The crawl, plus the direct addresses an annotator could guess for their own project's rows.
    direct = [
        f"/admin/annotation/item/{own.item.pk}/change/",
        f"/admin/annotation/assignment/{own.extra['lease'].pk}/change/",
        f"/admin/annotation/judgment/{own.judgment.pk}/change/",
        f"/admin/annotation/item/?q={own.item.external_id}",
        f"/admin/annotation/judgment/?project={own.project.pk}",
    ]
    pages = _crawl(client, ["/admin/", *direct])
    assert len(pages) > 20, "the crawl reached the admin pages of the project this user leads"
    reached_other = any("secret-model-other" in body for body in pages.values())
    assert reached_other, "the crawl sees the project they lead, so it would see the other one if it leaked"
    for path, body in pages.items():
        assert "secret-model-own" not in body, path
        assert f"/admin/annotation/item/{own.item.pk}/" not in body, path
        assert f"/admin/annotation/judgment/{own.judgment.pk}/" not in body, path
        assert f"/admin/annotation/assignment/{own.extra['lease'].pk}/" not in body, path
