"""publisher.core.media.files: safe file names within Viber's limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.core.errors import MediaError
from publisher.core.limits import FILE_MAX_BYTES, FILE_NAME_MAX, FORBIDDEN_EXTENSIONS
from publisher.core.media.files import check_file
from publisher.core.messages import FileMessage, utf16_len

PDF = "https://media.example.org/r.pdf"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("Report Final.PDF", "Report Final.PDF"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\Desktop\\notes.docx", "notes.docx"),
        ("bad\x00na\x07me\n.zip", "badname.zip"),
        ("tab\tand  spaces.csv", "tab and spaces.csv"),
        ("trailing dots.pdf...", "trailing dots.pdf"),
        ("  spaced.pdf  ", "spaced.pdf"),
        ("what?<is>this*.txt", "what__is_this_.txt"),
        ("archive.tar.gz", "archive.tar.gz"),
        ("example.com.pdf", "example.com.pdf"),  # .com inside a name is fine
        ("Café.pdf", "Café.pdf"),
        ("Cafe\u0301.pdf", "Café.pdf"),  # NFC
        ("文件.xlsx", "文件.xlsx"),
    ],
)
def test_safe_names(name: str, safe: str) -> None:
    assert check_file(name, 1234) == safe


@pytest.mark.parametrize(
    "name",
    [
        "setup.exe",
        "SETUP.EXE",
        "invoice.pdf.exe",
        "x.pdf.Exe",
        "x.exe.",
        "x.exe   ",
        "x.bat",
        "script.ps1",
        "app.apk",
        "thing.vbscript",
        "photo.jpg\u202eexe.scr.exe",  # right-to-left override trick, ends in .exe anyway
        "dir/evil.lnk",
        "evil.pdf\u202e.exe",
    ],
)
def test_forbidden_extensions(name: str) -> None:
    with pytest.raises(MediaError, match="Viber refuses"):
        check_file(name, 1000)


def test_bidi_override_cannot_hide_an_extension() -> None:
    # "x\u202eexe.pdf" displays as "xfdp.exe" in some clients: the override is removed.
    assert check_file("x\u202eexe.pdf", 10) == "xexe.pdf"


@pytest.mark.parametrize("ext", sorted(FORBIDDEN_EXTENSIONS))
def test_every_forbidden_extension(ext: str) -> None:
    with pytest.raises(MediaError):
        check_file(f"file{ext}", 10)
    with pytest.raises(MediaError):
        check_file(f"file{ext.upper()}", 10)


def test_forbidden_list_matches_the_api_sheet() -> None:
    assert len(FORBIDDEN_EXTENSIONS) == 44
    assert {".exe", ".inf1", ".u3p", ".vbscript", ".workflow", ".ipa"} <= FORBIDDEN_EXTENSIONS


@pytest.mark.parametrize("name", ["README", "noext.", ".pdf", "", "   ", "dir/", "...", "a.  "])
def test_no_extension_is_refused(name: str) -> None:
    with pytest.raises(MediaError, match="no extension"):
        check_file(name, 10)


@pytest.mark.parametrize(
    ("size", "ok"),
    [(1, True), (FILE_MAX_BYTES, True), (FILE_MAX_BYTES + 1, False), (0, False), (-5, False)],
)
def test_size_limit(size: int, ok: bool) -> None:
    if ok:
        assert check_file("a.pdf", size) == "a.pdf"
    else:
        with pytest.raises(MediaError):
            check_file("a.pdf", size)


def test_long_name_keeps_its_extension() -> None:
    safe = check_file("x" * 400 + ".pdf", 10)
    assert len(safe) == 256
    assert safe.endswith("x.pdf")


def test_name_of_exactly_256_is_kept() -> None:
    name = "y" * 252 + ".pdf"
    assert check_file(name, 10) == name


def test_absurd_extension_is_refused() -> None:
    with pytest.raises(MediaError, match="extension too long"):
        check_file("a." + "z" * 300, 10)


@pytest.mark.parametrize(
    "stem",
    ["😀" * 200, "a" + "😀" * 200, "🇺🇦" * 100, "q\u0301" * 200, "文" * 300],
    ids=["emoji", "odd", "flags", "combining", "cjk"],
)
def test_long_name_fits_in_utf16_units(stem: str) -> None:
    # Viber counts UTF-16 units: 200 emoji are 400 units, not 200 characters.
    safe = check_file(stem + ".pdf", 10)
    assert utf16_len(safe) <= FILE_NAME_MAX and safe.endswith(".pdf")
    assert utf16_len(safe) >= FILE_NAME_MAX - 3  # cut only as much as needed
    assert stem.startswith(safe[: -len(".pdf")])  # a prefix, cut between characters
    FileMessage(PDF, 10, safe)  # the payload rule accepts what was made


@given(st.text(max_size=400))
def test_any_name_is_safe_or_refused(name: str) -> None:
    try:
        safe = check_file(name + ".txt", 10)
    except MediaError:
        return
    assert utf16_len(safe) <= FILE_NAME_MAX
    FileMessage(PDF, 10, safe)  # what check_file makes, the payload rule accepts
    assert safe.endswith(".txt")
    assert "/" not in safe and "\\" not in safe
    assert all(ch.isprintable() or ch == " " for ch in safe)
    assert not safe.startswith(".")
