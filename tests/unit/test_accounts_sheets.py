"""Initial-credential sheets: passwords a child can type, one private, self-contained page per
class, and its PDF printed by headless chromium."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

import pytest

from educloud.accounts import sheets
from educloud.accounts.sheets import CredentialSlip, generate_password, render_class_sheets
from educloud.errors import EducloudError

LOGIN_URL = "https://cloud.academie.example.fr/"
UAI = "0751234A"


def _slip(
    family: str, given: str, class_label: str = "6e A", *, uai: str = UAI, password: str = ""
) -> CredentialSlip:
    account_id = f"{given}.{family}".lower()
    return CredentialSlip(
        account_id=account_id,
        given_name=given,
        family_name=family,
        uai=uai,
        class_label=class_label,
        login=account_id,
        password=password or generate_password(),
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Passwords


def test_password_has_the_requested_length_and_meets_the_realm_minimum() -> None:
    assert len(generate_password()) == 14
    assert len(generate_password(20)) == 20
    assert len(generate_password(12)) == 12
    with pytest.raises(ValueError, match="12"):
        generate_password(11)


def test_password_uses_only_unambiguous_characters_and_every_class() -> None:
    for _ in range(1000):
        password = generate_password(12)
        assert not set(password) & set("0Oo1lI"), password
        assert set(password) <= set(sheets.PASSWORD_ALPHABET)
        assert any(c.isupper() for c in password)
        assert any(c.islower() for c in password)
        assert any(c.isdigit() for c in password)


def test_alphabet_is_letters_and_digits_without_confusables() -> None:
    assert sheets.PASSWORD_ALPHABET.isalnum() and sheets.PASSWORD_ALPHABET.isascii()
    assert len(sheets.PASSWORD_ALPHABET) == 56


def test_passwords_are_unique() -> None:
    passwords = {generate_password() for _ in range(1000)}
    assert len(passwords) == 1000


# Slips


def test_repr_of_a_slip_hides_the_password() -> None:
    secret = generate_password()
    slip = _slip("Martin", "Léa", password=secret)
    assert secret not in repr(slip)
    assert secret not in str(slip)
    assert "Martin" in repr(slip)


# Sheets


def test_one_file_per_class_under_the_school(tmp_path: Path) -> None:
    slips = [
        _slip("Martin", "Léa", "6e A"),
        _slip("Bernard", "Hugo", "6e A"),
        _slip("Petit", "Jade", "CM2 B"),
        _slip("Durand", "Noé", "6e A", uai="0931234Z"),
    ]
    out = tmp_path / "sheets"
    written = render_class_sheets(slips, out, login_url=LOGIN_URL)
    assert written == [
        out / "0751234A" / "6e-a.html",
        out / "0751234A" / "cm2-b.html",
        out / "0931234Z" / "6e-a.html",
    ]
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(written)
    sixth = written[0].read_text(encoding="utf-8")
    assert "Martin" in sixth and "Bernard" in sixth
    assert "Petit" not in sixth and "Durand" not in sixth


def test_every_pupil_has_a_slip_with_their_login_and_password(tmp_path: Path) -> None:
    slips = [_slip("Martin", "Léa"), _slip("Bernard", "Hugo")]
    [html] = render_class_sheets(slips, tmp_path, login_url=LOGIN_URL)
    page = html.read_text(encoding="utf-8")
    assert page.count('class="slip"') == 2
    for slip in slips:
        assert slip.login in page
        assert slip.password in page


def test_slips_are_sorted_by_family_then_given_name(tmp_path: Path) -> None:
    slips = [
        _slip("Martin", "Zoé"),
        _slip("Élie", "Paul"),  # an accent does not send Élie after Martin
        _slip("Martin", "Adam"),
        _slip("Dupont", "Léo"),
    ]
    [html] = render_class_sheets(slips, tmp_path, login_url=LOGIN_URL)
    page = html.read_text(encoding="utf-8")
    pupils = re.findall(r'<div class="pupil">([^<]*)</div>', page)
    assert pupils == ["Dupont Léo", "Élie Paul", "Martin Adam", "Martin Zoé"]


def test_names_are_escaped(tmp_path: Path) -> None:
    slips = [_slip("<script>alert(1)</script>", 'Bob & "Alice"', "6e <b>A</b>")]
    [html] = render_class_sheets(slips, tmp_path, login_url=LOGIN_URL)
    page = html.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Bob &amp; &#34;Alice&#34;" in page


def test_page_loads_nothing_from_anywhere(tmp_path: Path) -> None:
    [html] = render_class_sheets(
        [_slip("Martin", "Léa")],
        tmp_path,
        login_url=LOGIN_URL,
        school_names={UAI: "École Jules Ferry"},
    )
    page = html.read_text(encoding="utf-8")
    assert LOGIN_URL in page  # printed as text for the pupil to type
    rest = page.replace(LOGIN_URL, "").lower()
    assert "//" not in rest
    for forbidden in ("<link", "<script", "<img", "<iframe", "<object", "src=", "@import", "url("):
        assert forbidden not in rest, forbidden
    assert "default-src 'none'" in page  # a CSP blocks anything that slipped in


def test_page_is_in_french_with_the_first_login_instructions(tmp_path: Path) -> None:
    [html] = render_class_sheets(
        [_slip("Martin", "Léa")],
        tmp_path,
        login_url=LOGIN_URL,
        school_names={UAI: "École Jules Ferry"},
    )
    page = html.read_text(encoding="utf-8")
    assert '<html lang="fr">' in page
    for text in (
        "Identifiant",
        "Mot de passe provisoire",
        "doit être changé dès la première\nconnexion",
        "détruire",
        "Document généré par educloud",
        "contient des\nmots de passe",
        "École Jules Ferry (0751234A)",
        "Classe : 6e A",
    ):
        assert text in page, text


def test_print_css_keeps_each_slip_on_one_a4_page(tmp_path: Path) -> None:
    [html] = render_class_sheets([_slip("Martin", "Léa")], tmp_path, login_url=LOGIN_URL)
    page = html.read_text(encoding="utf-8")
    assert "size: A4" in page
    assert re.search(r"\.slip \{[^}]*break-inside: avoid", page)
    assert re.search(r"\.secret \{[^}]*monospace[^}]*letter-spacing", page)


def test_sheets_are_private(tmp_path: Path) -> None:
    out = tmp_path / "sheets"
    [html] = render_class_sheets([_slip("Martin", "Léa")], out, login_url=LOGIN_URL)
    assert _mode(html) == 0o600
    assert _mode(html.parent) == 0o700
    assert _mode(out) == 0o700
    assert [p.name for p in html.parent.iterdir()] == [html.name]  # no partial file left


def test_a_school_directory_left_open_is_closed(tmp_path: Path) -> None:
    (tmp_path / UAI).mkdir(mode=0o755)
    (tmp_path / UAI).chmod(0o755)
    [html] = render_class_sheets([_slip("Martin", "Léa")], tmp_path, login_url=LOGIN_URL)
    assert _mode(html.parent) == 0o700


def test_a_uai_that_is_not_a_plain_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EducloudError, match="UAI"):
        render_class_sheets([_slip("Martin", "Léa", uai="../x")], tmp_path, login_url=LOGIN_URL)
    assert list(tmp_path.iterdir()) == []


def test_two_classes_with_the_same_file_name_are_refused(tmp_path: Path) -> None:
    slips = [_slip("Martin", "Léa", "6e A"), _slip("Petit", "Jade", "6E-A")]
    with pytest.raises(EducloudError, match=re.escape("6e-a.html")):
        render_class_sheets(slips, tmp_path, login_url=LOGIN_URL)


def test_index_lists_classes_without_passwords(tmp_path: Path) -> None:
    slips = [_slip("Martin", "Léa", "6e A"), _slip("Petit", "Jade", "CM2 B")]
    index = sheets.write_index(slips, tmp_path, school_names={UAI: "École Jules Ferry"})
    page = index.read_text(encoding="utf-8")
    assert 'href="0751234A/6e-a.html"' in page and 'href="0751234A/cm2-b.html"' in page
    for slip in slips:
        assert slip.password not in page
    assert _mode(index) == 0o600


def test_missing_chromium_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EducloudError, match="chromium"):
        render_class_sheets(
            [_slip("Martin", "Léa")],
            tmp_path,
            login_url=LOGIN_URL,
            pdf=True,
            chromium="/nonexistent/chromium",
        )


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_pdf_is_printed_by_chromium(tmp_path: Path) -> None:
    slips = [_slip("Martin", "Léa"), _slip("Bernard", "Hugo")]
    written = render_class_sheets(slips, tmp_path, login_url=LOGIN_URL, pdf=True)
    html, pdf = written
    assert pdf == html.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert _mode(pdf) == 0o600
    assert sorted(p.name for p in html.parent.iterdir()) == ["6e-a.html", "6e-a.pdf"]


def test_pupils_without_a_class_get_their_own_sheet(tmp_path: Path) -> None:
    [html] = render_class_sheets([_slip("Martin", "Léa", "")], tmp_path, login_url=LOGIN_URL)
    assert html.name == "sans-classe.html"
    assert "Classe : sans classe" in html.read_text(encoding="utf-8")
