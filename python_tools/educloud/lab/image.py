"""The lab's Debian 12 image: built once with debootstrap, rebuilt when its recipe changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from educloud.commands import run
from educloud.errors import EducloudError
from educloud.lab.settings import APT_PROXY_PORT, BRIDGE_ADDRESS, SUITE, LabPaths
from educloud.paths import repo_root

# What a lab host needs before Ansible can run on it: systemd as PID 1, sshd, Python
# with apt bindings (ansible.builtin.apt needs python3-apt).
IMAGE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "ca-certificates",
    "sudo",
    "procps",
)


@dataclass(frozen=True)
class ImageRecipe:
    suite: str
    variant: str
    packages: tuple[str, ...]
    mirror: str
    # Installed with apt-get, as the role's apt task would (Recommends included: debootstrap's
    # --include leaves them out, and the firewall's rules need netbase's /etc/protocols).
    preinstalled: tuple[str, ...] = ()
    # Bump when the customisation in `_customise` or `_upgrade` changes.
    layout: int = 3

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def common_role_packages() -> tuple[str, ...]:
    """The packages roles/common installs on every host (`common_packages`): in the image,
    so that each of the fifteen or so hosts a test run boots (the lab's and every molecule
    scenario's) does not download and install them again (30 to 50 s each under CI's load).
    The role's task still runs on every host and finds them there, as on a provider's
    Debian image that ships them; its check and idempotence runs are unchanged."""
    defaults = repo_root() / "roles" / "common" / "defaults" / "main.yml"
    packages = yaml.safe_load(defaults.read_text(encoding="utf-8")).get("common_packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise EducloudError(f"{defaults}: common_packages is not a list of package names")
    return tuple(packages)


def default_recipe(mirror: str) -> ImageRecipe:
    return ImageRecipe(SUITE, "minbase", IMAGE_PACKAGES, mirror, common_role_packages())


def image_path(paths: LabPaths, recipe: ImageRecipe) -> Path:
    return paths.images / f"{recipe.suite}-{recipe.digest()}"


def is_built(paths: LabPaths, recipe: ImageRecipe) -> bool:
    return (image_path(paths, recipe) / ".educloud-image").is_file()


def _customise(root: Path, recipe: ImageRecipe) -> None:
    """Settings every lab host shares; per-host ones are written when a host is created."""
    proxy = f"http://{BRIDGE_ADDRESS}:{APT_PROXY_PORT}"
    (root / "etc/apt/apt.conf.d/01educloud-lab-proxy").write_text(
        "// managed by educloud lab: Debian packages come only through the lab's apt proxy\n"
        f'Acquire::http::Proxy "{proxy}";\n'
    )
    # Keep the production-like mirror name; the proxy forwards it to the host's mirror.
    (root / "etc/apt/sources.list").write_text(
        "# managed by educloud lab\n"
        f"deb http://deb.debian.org/debian {recipe.suite} main\n"
        f"deb http://deb.debian.org/debian {recipe.suite}-updates main\n"
        f"deb http://deb.debian.org/debian-security {recipe.suite}-security main\n"
    )
    # No DNS in the lab: names are in /etc/hosts, and nothing resolves outside.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# managed by educloud lab: no resolver, the lab has no DNS\n")
    # Per-host identity is generated at host creation; never share it between hosts.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    run(
        ["chroot", str(root), "systemctl", "enable", "systemd-networkd.service"],
        what="enabling systemd-networkd in the lab image",
    )
    # Debian's default host0 network file would take the link for DHCP/link-local.
    (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)


def _upgrade(root: Path, env: dict[str, str], preinstalled: tuple[str, ...] = ()) -> None:
    """Install the updates published since the release (debootstrap takes the release's own
    packages) once, in the image, rather than in every host booted from it: the deploy's own
    security-update run (roles/common, C10) then finds nothing to do on a fresh host, in the
    lab and in each molecule scenario alike; then `preinstalled` (common_role_packages).
    Through the apt proxy written by `_customise`;
    services are not started in a chroot (invoke-rc.d sees it); maintainer scripts get /proc."""
    proc = root / "proc"
    run(["mount", "-t", "proc", "proc", str(proc)], what="mounting /proc in the lab image")
    try:
        for argv in (
            ["apt-get", "-q", "update"],
            ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"],
            *([["apt-get", "-q", "-y", "install", *preinstalled]] if preinstalled else []),
            ["apt-get", "clean"],
        ):
            run(
                ["chroot", str(root), *argv],
                what=f"updating the lab image ({' '.join(argv[:4])})",
                env=env,
                timeout=1800,
            )
    finally:
        run(["umount", str(proc)], what="unmounting /proc in the lab image", check=False)


def build(paths: LabPaths, recipe: ImageRecipe) -> Path:
    """Build the image if this recipe has none yet; atomic (built aside, then renamed)."""
    target = image_path(paths, recipe)
    if is_built(paths, recipe):
        return target
    paths.images.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)  # an interrupted build: start it again from scratch
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "http_proxy": f"http://{BRIDGE_ADDRESS}:{APT_PROXY_PORT}",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    run(
        [
            "debootstrap",
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(staging),
            "http://deb.debian.org/debian",
        ],
        what="building the lab image with debootstrap",
        env=env,
        timeout=1800,
    )
    _customise(staging, recipe)
    _upgrade(staging, env, recipe.preinstalled)
    (staging / ".educloud-image").write_text(json.dumps(asdict(recipe), indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    # Older images of other recipes are no longer used by new hosts.
    for old in paths.images.iterdir():
        if old != target and old.is_dir() and not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)
    return target
