"""Hostile import files are refused fast and whole, and the project's import lock is free again at once.

Gzip bombs (a gzip of newlines, a file inflating to 1 GB), too many lines, a file past the time budget, and text
the database cannot store (NUL, lone surrogates), through the API and the import_items command.
"""

import json
import struct
import threading
import time
import zlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from annotation.models import ImportRecord, Item
from annotation.services import ImportRejected, items_import
from tests.core.jobs import follow_job
from tests.factories import ProjectFactory

MIB = 1 << 20


def gzip_of(byte: bytes, size: int) -> bytes:
    """A valid gzip of `size` bytes all equal to `byte`, built in well under a second.

    One MiB is deflated once, ending on a full flush so that the block stands alone; the file repeats it (each
    copy only refers back within itself), then ends the stream with the real CRC and length.
    """
    chunk = byte * MIB
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    count = size // MIB
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * count + deflate.flush() + struct.pack("<II", crc, (count * MIB) & 0xFFFFFFFF)


def good(n: int, **fields) -> dict:
    return {
        "id": f"item-{n}",
        "prompt": f"Question number {n}?",
        "response_a": {"model": "sft-7b", "text": f"Short answer {n}."},
        "response_b": {"model": "sft-7b-t0.9", "text": f"A longer answer to question {n}."},
        "stratum": "usage",
        **fields,
    }


def jsonl(lines: list) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


@pytest.fixture(scope="module")
def newlines_gz() -> bytes:
    data = gzip_of(b"\n", 300 * MIB)  # the finding's file: ~300 KB of gzip, 314 million blank lines
    assert 250_000 < len(data) < 400_000
    return data


@pytest.fixture(scope="module")
def gigabyte_gz() -> bytes:
    data = gzip_of(b"\0", 1000 * MIB)  # inflates to 1.05 GB; about 1 MB of gzip
    assert len(data) < 2 * MIB
    return data


def post_import(client, project, name: str, data: bytes, batch: str = "b1"):
    upload = SimpleUploadedFile(name, data)
    return client.post(f"/api/v1/projects/{project.pk}/imports/", {"file": upload, "batch": batch}, format="multipart")


def assert_lock_free(project) -> None:
    """A valid import from another connection (another thread) goes through at once."""
    result = {}

    def other():
        try:
            started = time.monotonic()
            report = items_import(project=project, batch_name="after", source=_bytes_io(jsonl([good(1), good(2)])))
            result["report"], result["seconds"] = report, time.monotonic() - started
        finally:
            connection.close()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the second import waited on the lock"
    assert result["report"].created == 2
    assert result["seconds"] < 2


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


# --- Gzip bombs ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bomb", ["newlines_gz", "gigabyte_gz"])
def test_a_gzip_bomb_is_refused_through_the_api_in_under_2_s_and_the_lock_is_free(bomb, request, project, lead_client):
    data = request.getfixturevalue(bomb)
    response = post_import(lead_client, project, f"{bomb}.jsonl.gz", data)
    started = time.monotonic()
    job = follow_job(lead_client, response)
    elapsed = time.monotonic() - started
    assert (job["state"], job["error"]["code"]) == ("failed", "import_compression_ratio")
    body = job["result"]
    assert body["code"] == "import_compression_ratio"
    assert body["errors"][0]["line"] is None  # the file as a whole
    assert "inflates to over 200 times its compressed size" in body["errors"][0]["reason"]
    assert "inflates to over 200 times its compressed size" in job["error"]["detail"]
    assert elapsed < 2, f"refused after {elapsed:.1f} s"
    assert not Item.objects.filter(project=project).exists()
    assert ImportRecord.objects.get(pk=body["record_id"]).status == "rejected"
    assert_lock_free(project)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bomb", ["newlines_gz", "gigabyte_gz"])
def test_a_gzip_bomb_is_refused_by_the_command_in_under_2_s(bomb, request, tmp_path):
    project = ProjectFactory(name="Bombed")
    path = tmp_path / f"{bomb}.jsonl.gz"
    path.write_bytes(request.getfixturevalue(bomb))
    err = StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_items", str(path), "--project", "Bombed", "--batch", "b", stdout=StringIO(), stderr=err)
    assert time.monotonic() - started < 2
    assert "inflates to over 200 times its compressed size" in err.getvalue()
    assert_lock_free(project)


@pytest.mark.django_db
@override_settings(TANDEM_IMPORT_MAX_COMPRESSION_RATIO=2000)
def test_without_the_ratio_the_decompressed_size_limit_stops_the_bomb_early(gigabyte_gz):
    project = ProjectFactory()
    started = time.monotonic()
    with override_settings(TANDEM_IMPORT_MAX_DECOMPRESSED_BYTES=50 * MIB), pytest.raises(ImportRejected) as caught:
        items_import(project=project, batch_name="b", source=_bytes_io(gigabyte_gz))
    assert caught.value.report.code == "import_too_large"
    assert caught.value.report.errors[0]["reason"].startswith("the file is larger than the import limit of 52,428,800")
    assert time.monotonic() - started < 2  # it stopped at 50 MiB, not at 1 GB


@pytest.mark.django_db
def test_an_ordinary_gzip_is_far_below_the_ratio_limit(project):
    import gzip

    lines = [good(n, prompt="Explain the same thing again, please. " * 20) for n in range(5000)]
    data = gzip.compress(jsonl(lines))
    assert len(jsonl(lines)) > 4 * MIB  # past the point where the ratio is checked
    report = items_import(project=project, batch_name="b", source=_bytes_io(data))
    assert report.created == 5000


@pytest.mark.django_db
def test_concatenated_gzip_members_read_as_one_file(project):
    import gzip

    data = gzip.compress(jsonl([good(1), good(2)])) + gzip.compress(jsonl([good(3)]))
    report = items_import(project=project, batch_name="b", source=_bytes_io(data))
    assert report.created == 3


# --- Lines and time ------------------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(TANDEM_IMPORT_MAX_LINES=100)
def test_blank_lines_count_toward_the_line_limit(project, lead_client):
    data = jsonl([good(n) for n in range(50)] + [""] * 51)
    response = post_import(lead_client, project, "blank.jsonl", data)
    job = follow_job(lead_client, response)
    body = job["result"]
    assert body["code"] == job["error"]["code"] == "import_too_many_lines"
    # An error of the file as a whole has no line number (not "line 0"), and the summary says what it was.
    assert body["errors"] == [{"line": None, "reason": "the file has more than the import limit of 100 lines"}]
    assert job["error"]["detail"] == (
        "Rejected blank.jsonl: nothing was imported. The file has more than the import limit of 100 lines."
    )
    assert not Item.objects.exists()
    # At the limit it imports.
    response = post_import(lead_client, project, "fits.jsonl", jsonl([good(n) for n in range(50)] + [""] * 50))
    assert follow_job(lead_client, response)["state"] == "succeeded"


@pytest.mark.django_db(transaction=True)
@override_settings(TANDEM_IMPORT_TIME_BUDGET_SECONDS=0.5, TANDEM_IMPORT_CHUNK_SIZE=500)
def test_an_import_past_its_time_budget_is_refused_and_releases_the_lock_to_a_waiting_import(tmp_path):
    # A slow import holds the lock; a second lead's import waits for it. When the first passes its budget it is
    # refused whole and the second goes through: the wait is the budget, not the length of the slow file.
    project = ProjectFactory(name="Slow")
    slow = tmp_path / "slow.jsonl"
    slow.write_bytes(jsonl([good(n) for n in range(100_000)]))  # 6-8 s to import without a budget
    results: dict[str, object] = {}
    started = threading.Event()

    def first():
        try:
            with slow.open("rb") as source:
                started.set()
                items_import(project=project, batch_name="slow", source=source)
        except ImportRejected as exc:
            results["first"] = exc.report
        finally:
            results["first_done"] = time.monotonic()
            connection.close()

    def second():
        try:
            started.wait()
            time.sleep(0.1)  # the first holds the lock by now
            report = items_import(project=project, batch_name="quick", source=_bytes_io(jsonl([good(10**6)])))
            results["second"], results["second_done"] = report, time.monotonic()
        finally:
            connection.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    report = results["first"]
    assert report.code == "import_time_budget"
    assert "longer than its time budget of 0.5 s" in report.errors[-1]["reason"]
    assert results["first_done"] - t0 < 3
    assert results["second"].created == 1
    assert results["second_done"] - t0 < 4
    assert list(Item.objects.filter(project=project).values_list("external_id", flat=True)) == [f"item-{10**6}"]


# --- Text the database cannot store --------------------------------------------------------------------------


def test_nul_and_lone_surrogates_are_named_bad_lines(project, lead_client):
    lines = [
        good(1),
        good(2, prompt="before\u0000after"),  # json.dumps writes the \u0000 escape
        good(3, response_b={"model": "m", "text": "half a pair \ud800 here"}),
        '{"prompt": "p", "response_a": {"text": "x"}, "response_b": {"model": "m\\udfff", "text": "y"}}',
        good(5, messages=[{"role": "user", "content": "\u0000"}], prompt=...),
        good(6, category="\udc80"),
        good(7, id="id-\u0000"),
        good(8, response_a={"model": "ok", "text": "a smile \U0001f600 is a valid pair"}),
    ]
    data = jsonl([{k: v for k, v in x.items() if v is not ...} if isinstance(x, dict) else x for x in lines])
    # A surrogate written as raw UTF-8 bytes (ED A0 80), which json.loads decodes with surrogatepass.
    data += b'{"prompt": "p", "response_a": {"text": "x\xed\xa0\x80"}, "response_b": {"text": "y"}}\n'
    response = post_import(lead_client, project, "text.jsonl", data)
    job = follow_job(lead_client, response)
    assert job["state"] == "failed"
    body = job["result"]
    assert body["code"] == "import_bad_lines"
    assert body["errors"] == [
        {"line": 2, "reason": "prompt contains a NUL character (\\u0000), which cannot be stored as text"},
        {
            "line": 3,
            "reason": "response_b.text contains a lone surrogate (invalid Unicode), which cannot be stored as text",
        },
        {
            "line": 4,
            "reason": "response_b.model contains a lone surrogate (invalid Unicode), which cannot be stored as text",
        },
        {"line": 5, "reason": "messages[0].content contains a NUL character (\\u0000), which cannot be stored as text"},
        {"line": 6, "reason": "category contains a lone surrogate (invalid Unicode), which cannot be stored as text"},
        {"line": 7, "reason": "id contains a NUL character (\\u0000), which cannot be stored as text"},
        {
            "line": 9,
            "reason": "response_a.text contains a lone surrogate (invalid Unicode), which cannot be stored as text",
        },
    ]
    assert not Item.objects.exists()


def test_a_hh_line_with_nul_is_a_bad_line_through_the_command(project, tmp_path):
    path = Path(tmp_path / "hh.jsonl")
    chosen = "\n\nHuman: hi\u0000\n\nAssistant: hello"
    path.write_bytes(jsonl([{"chosen": chosen, "rejected": "\n\nHuman: hi\u0000\n\nAssistant: go away"}]))
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_items", str(path), "--project", project.name, "--batch", "b", stderr=err)
    assert "line 1: messages[0].content contains a NUL character" in err.getvalue()
