"""The nextcloud role refuses an app archive made for another Nextcloud before anything changes.

Issue #24, finding 3, at the unit level: tiny app archives (a tar.gz holding
<app>/appinfo/info.xml, the layout of the nextcloud-releases archives) are given to the role's
input checks (tasks/validate.yml, run by the real ansible-playbook on this machine); the ones
whose <nextcloud min-version max-version> admits the Nextcloud being installed pass, the
others stop the run with a message naming the app's range and the deployment's version, and
the recap shows no change. The version comparison is Nextcloud's (DependencyAnalyzer).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from tests.unit.role_validation import PLAYBOOKS, SINGLE_SERVER, run_playbook, validate_role

from educloud.paths import repo_root

ROLE = repo_root() / "roles" / "nextcloud"
# The role's messages give a range as min\N{EN DASH}max.
DASH = "\N{EN DASH}"

VALID = {
    "nextcloud_hostname": "cloud.academie.test",
    "nextcloud_db_password": "db-password-0123",
    "nextcloud_admin_password": "admin-password-0123",
    "nextcloud_redis_password": "redis-password-0123456",
    # A release archive is given: the role would install Nextcloud 34.0.4 (nextcloud_version).
    "nextcloud_archive_url": "https://download.nextcloud.test/server/releases/nextcloud-34.0.4.tar.bz2",
    "nextcloud_archive_sha256": "0" * 64,
}

INFO_XML = """<?xml version="1.0"?>
<info xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
\t<id>{app_id}</id>
\t<name>{app_id}</name>
\t<version>{version}</version>
\t<dependencies>
\t\t{php}<nextcloud min-version="{nc_min}" max-version="{nc_max}"/>
\t</dependencies>
</info>
"""


def app_archive(
    directory: Path,
    app_id: str,
    version: str,
    nextcloud: tuple[str, str] | None,
    *,
    top: str | None = None,
    php: tuple[str, str] | None = None,
) -> dict[str, str]:
    """A release archive of APP_ID with its info.xml; the nextcloud_app_archives record for it."""
    if nextcloud is None:
        info = (
            f'<?xml version="1.0"?>\n<info><id>{app_id}</id><version>{version}</version></info>\n'
        )
    else:
        php_element = f'<php min-version="{php[0]}" max-version="{php[1]}"/>' if php else ""
        info = INFO_XML.format(
            app_id=app_id,
            version=version,
            nc_min=nextcloud[0],
            nc_max=nextcloud[1],
            php=php_element,
        )
    path = directory / f"{app_id}-v{version}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, content in (
            (f"{top or app_id}/appinfo/info.xml", info.encode()),
            (f"{top or app_id}/lib/Application.php", b"<?php\n"),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"name": app_id, "url": str(path), "sha256": sha256}


def _validate(tmp_path: Path, archives: list[dict[str, str]], **extra: object) -> str:
    variables = {
        **VALID,
        "nextcloud_app_archives": archives,
        "nextcloud_install_dir": str(tmp_path / "www-nextcloud"),
        "nextcloud_app_archive_cache_dir": str(tmp_path / "cache"),
        **extra,
    }
    result = validate_role("nextcloud", variables, SINGLE_SERVER)
    return _outcome(result)


def _outcome(result: subprocess.CompletedProcess[str]) -> str:
    return f"rc={result.returncode}\n{result.stdout}{result.stderr}"


def _unchanged(output: str) -> bool:
    return re.search(r"changed=0\s", output) is not None


def _message(output: str) -> str:
    """The output with the YAML callback's line wrapping undone."""
    return re.sub(r"\s+", " ", output)


# --- the check itself ----------------------------------------------------------------------


def test_releases_that_fit_nextcloud_34_pass(tmp_path: Path) -> None:
    archives = [
        app_archive(tmp_path, "user_oidc", "8.10.1", ("29", "34")),
        app_archive(tmp_path, "groupfolders", "22.0.6", ("34", "34")),
        app_archive(tmp_path, "files_retention", "5.0.0", ("34", "34")),
    ]
    output = _validate(tmp_path, archives)
    assert output.startswith("rc=0"), output
    assert "Refuse an app archive made for another Nextcloud or PHP" in output
    assert _unchanged(output), output


@pytest.mark.parametrize(
    ("app_id", "version", "nextcloud", "expected"),
    [
        # The role's former example: user_oidc 7.x declares 32 at most.
        ("user_oidc", "7.3.0", ("28", "32"), f"user_oidc 7.3.0 supports Nextcloud 28{DASH}32"),
        # The newest branches of groupfolders and files_retention: Nextcloud 35 only.
        (
            "groupfolders",
            "23.0.0",
            ("35", "35"),
            f"groupfolders 23.0.0 supports Nextcloud 35{DASH}35",
        ),
        (
            "files_retention",
            "6.0.0",
            ("35", "35"),
            f"files_retention 6.0.0 supports Nextcloud 35{DASH}35",
        ),
        # A range that ends before the patch release being installed.
        (
            "terms_of_service",
            "4.7.9",
            ("34.0.0", "34.0.3"),
            f"supports Nextcloud 34.0.0{DASH}34.0.3",
        ),
    ],
)
def test_a_release_for_another_nextcloud_is_refused_before_anything_changes(
    tmp_path: Path, app_id: str, version: str, nextcloud: tuple[str, str], expected: str
) -> None:
    fitting = app_archive(tmp_path, "user_migration", "10.4.0", ("29", "34"))
    refused = app_archive(tmp_path, app_id, version, nextcloud)
    output = _validate(tmp_path, [fitting, refused])
    assert not output.startswith("rc=0"), output
    message = _message(output)
    assert f"{expected}, this deployment installs 34.0.4 (nextcloud_version" in message, output
    assert "Nothing was changed on localhost" in message
    assert _unchanged(output), output


def test_the_installed_nextcloud_decides_once_there_is_one(tmp_path: Path) -> None:
    install_dir = tmp_path / "www-nextcloud"
    install_dir.mkdir()
    (install_dir / "version.php").write_text(
        "<?php\n$OC_Version = array(33, 0, 2, 1);\n$OC_VersionString = '33.0.2';\n",
        encoding="utf-8",
    )
    archive = app_archive(tmp_path, "groupfolders", "22.0.6", ("34", "34"))
    # Even without a release archive: the apps run on the Nextcloud already installed.
    output = _validate(tmp_path, [archive], nextcloud_archive_url="", nextcloud_archive_sha256="")
    assert not output.startswith("rc=0"), output
    message = _message(output)
    assert (
        f"groupfolders 22.0.6 supports Nextcloud 34{DASH}34, this deployment installs 33.0.2.1"
        in message
    )
    assert "already installed on localhost: $OC_Version in" in message


def test_no_release_archive_and_nothing_installed_skips_the_check(tmp_path: Path) -> None:
    # The lab: "Nextcloud not installed". The role stops before the install step and installs
    # no app, so an archive for another Nextcloud does not break the run.
    archive = app_archive(tmp_path, "groupfolders", "23.0.0", ("35", "35"))
    output = _validate(tmp_path, [archive], nextcloud_archive_url="", nextcloud_archive_sha256="")
    assert output.startswith("rc=0"), output
    assert "Read appinfo/info.xml" not in output


@pytest.mark.parametrize(
    ("archive_args", "expected"),
    [
        (
            {"app_id": "user_oidc", "version": "8.10.1", "nextcloud": None},
            "declares no <dependencies><nextcloud min-version max-version>",
        ),
        (
            {
                "app_id": "user_oidc",
                "version": "8.10.1",
                "nextcloud": ("29", "34"),
                "php": ("8.3", "8.5"),
            },
            f"user_oidc 8.10.1 supports PHP 8.3{DASH}8.5, this deployment runs PHP 8.2",
        ),
        (
            {"app_id": "user_oidc", "version": "8.10.1", "nextcloud": ("29", "34"), "top": "x/y"},
            "no <app>/appinfo/info.xml in it",
        ),
    ],
)
def test_an_archive_that_does_not_say_what_it_needs_is_refused(
    tmp_path: Path, archive_args: dict[str, object], expected: str
) -> None:
    archive = app_archive(tmp_path, **archive_args)  # type: ignore[arg-type]
    output = _validate(tmp_path, [archive])
    assert not output.startswith("rc=0"), output
    assert expected in _message(output), output


def test_the_record_name_must_be_the_app_id(tmp_path: Path) -> None:
    archive = {**app_archive(tmp_path, "groupfolders", "22.0.6", ("34", "34")), "name": "user_oidc"}
    output = _validate(tmp_path, [archive])
    assert not output.startswith("rc=0"), output
    assert "holds the app groupfolders, not user_oidc" in _message(output), output


def test_a_local_archive_with_another_checksum_is_refused(tmp_path: Path) -> None:
    archive = {**app_archive(tmp_path, "groupfolders", "22.0.6", ("34", "34")), "sha256": "a" * 64}
    output = _validate(tmp_path, [archive])
    assert not output.startswith("rc=0"), output
    assert f"differs from the expected {'a' * 64}" in _message(output), output


def test_nextcloud_version_must_be_the_release_archives(tmp_path: Path) -> None:
    archive = app_archive(tmp_path, "groupfolders", "23.0.0", ("35", "35"))
    output = _validate(
        tmp_path,
        [archive],
        nextcloud_archive_url="https://download.nextcloud.test/server/releases/nextcloud-35.0.1.tar.bz2",
    )
    assert not output.startswith("rc=0"), output
    assert "while the release archive nextcloud-35.0.1.tar.bz2 holds 35.0.1" in _message(output)


# --- archives given by URL: downloaded once to the controller, checked there --------------


@contextlib.contextmanager
def _served(directory: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_archive_given_by_url_is_read_from_the_controllers_copy(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fitting = app_archive(mirror, "user_oidc", "8.10.1", ("29", "34"))
    refused = app_archive(mirror, "groupfolders", "23.0.0", ("35", "35"))
    with _served(mirror) as base:
        for record in (fitting, refused):
            record["url"] = f"{base}/{Path(record['url']).name}"
        accepted = _validate(tmp_path, [fitting])
        output = _validate(tmp_path, [fitting, refused])
    assert accepted.startswith("rc=0"), accepted
    cached = tmp_path / "cache" / f"user_oidc-{fitting['sha256']}.tar.gz"
    assert cached.read_bytes() == (mirror / "user_oidc-v8.10.1.tar.gz").read_bytes()
    assert not output.startswith("rc=0"), output
    assert (
        f"groupfolders 23.0.0 supports Nextcloud 35{DASH}35, this deployment installs 34.0.4"
        in _message(output)
    )


def test_the_check_runs_in_check_mode(tmp_path: Path) -> None:
    refused = app_archive(tmp_path, "groupfolders", "23.0.0", ("35", "35"))
    variables = {
        **VALID,
        "nextcloud_app_archives": [refused],
        "nextcloud_install_dir": str(tmp_path / "www-nextcloud"),
        "nextcloud_app_archive_cache_dir": str(tmp_path / "cache"),
        "educloud_role_under_test": "nextcloud",
    }
    result = run_playbook(
        PLAYBOOKS / "role_validate.yml", str(SINGLE_SERVER), variables, check=True
    )
    output = _outcome(result)
    assert not output.startswith("rc=0"), output
    assert f"groupfolders 23.0.0 supports Nextcloud 35{DASH}35" in _message(output), output


# --- where the check sits, and the comparison ---------------------------------------------


def test_the_check_is_part_of_validation_which_runs_first() -> None:
    main = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text(encoding="utf-8"))
    assert main[0]["ansible.builtin.import_tasks"] == "validate.yml"
    validate = yaml.safe_load((ROLE / "tasks" / "validate.yml").read_text(encoding="utf-8"))
    includes = [task.get("ansible.builtin.include_tasks") for task in validate]
    assert "app_compatibility.yml" in includes
    # Nothing in it writes to the host: only reads there, and the controller's cache.
    compatibility = yaml.safe_load(
        (ROLE / "tasks" / "app_compatibility.yml").read_text(encoding="utf-8")
    )
    for task in compatibility:
        module = next(key for key in task if key.startswith("ansible.builtin."))
        if module not in {
            "ansible.builtin.slurp",
            "ansible.builtin.stat",
            "ansible.builtin.set_fact",
            "ansible.builtin.assert",
        }:
            assert task.get("delegate_to") == "localhost", task["name"]


@pytest.fixture(scope="module")
def app_info() -> ModuleType:
    path = ROLE / "files" / "nextcloud_app_info.py"
    spec = importlib.util.spec_from_file_location("nextcloud_app_info", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("version", "minimum", "maximum", "fits"),
    [
        ("34.0.4", "29", "34", True),
        ("34.0.4.1", "34", "34", True),
        ("34.0.4", "35", "35", False),
        ("34.0.4", "28", "32", False),
        ("34.0.4", "34.0.0", "34.0.3", False),
        ("34.0.4", "34.0.4", "34.0.9", True),
        ("8.2", "8.1", "8.4", True),
        ("8.2", "8.3", None, False),
        ("8.2", None, None, True),
    ],
)
def test_versions_compare_as_nextcloud_compares_them(
    app_info: ModuleType, version: str, minimum: str | None, maximum: str | None, fits: bool
) -> None:
    assert app_info.within(version, minimum, maximum) is fits
