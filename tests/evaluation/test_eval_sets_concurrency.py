"""Two imports of one set name at once get the next two versions, neither an IntegrityError: the import takes the
project's advisory lock on PostgreSQL (SQLite serialises writers anyway)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connections

from evaluation.models import EvalSet
from tests.annotation.test_concurrency import require_postgres
from tests.evaluation.sets_fixtures import GOOD_LINES, import_set
from tests.factories import ProjectFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_imports_of_one_name_take_consecutive_versions(settings, tmp_path):
    require_postgres()
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    project = ProjectFactory(name="Racing")
    barrier = threading.Barrier(4)

    def one(n: int) -> int:
        try:
            barrier.wait()
            return import_set(project, lines=GOOD_LINES[: 1 + n % 4]).version
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(one, range(4)))
    assert versions == [1, 2, 3, 4]
    assert sorted(EvalSet.objects.filter(project=project).values_list("version", flat=True)) == [1, 2, 3, 4]
    for eval_set in EvalSet.objects.filter(project=project):
        assert (Path(settings.ARTIFACTS_DIR) / eval_set.path).is_file()
