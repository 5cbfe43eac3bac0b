#!/usr/bin/env bash
# The two commands of the quick start:
#   ./run.sh deploy   set up this machine, boot the lab, deploy the stack, print what was verified
#   ./run.sh test     set up this machine, then run the whole test suite (what CI runs)
# Both are idempotent: run them again at any time.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$REPO/.venv"
REPORTS="$REPO/reports"
# Debian packages the tooling needs on this (controller) machine.
HOST_PACKAGES=(python3 python3-venv python3-dev debootstrap systemd-container apt-cacher-ng
               nftables iproute2 openssh-client ca-certificates maven
               # javac: the Keycloak bulk import provider is compiled here (extensions/).
               openjdk-17-jdk-headless
               chromium geoip-bin geoip-database php8.2-cli gnupg
               # postgresql: the report service's unit tests start a throwaway cluster (C9).
               postgresql
               # restic: the backup agent's unit tests run it on a local repository (C10).
               restic)

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

setup() {
  [ "$(id -u)" = 0 ] || die "run as root: the lab creates network links and boots containers"
  grep -q 'VERSION_CODENAME=bookworm' /etc/os-release \
    || die "this quick start needs Debian 12 (bookworm)"
  local missing=()
  for pkg in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local stamp="$VENV/.educloud-stamp" want
  want="$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "creating the Python environment in .venv (pinned dependencies)"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$REPO[controller,test]"
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
  cd "$REPO"
}

deploy() {
  setup
  say "booting the lab"
  educloud lab up
  say "deploying the stack onto the lab (ansible/site.yml)"
  educloud deploy --inventory inventories/lab
  say "verifying the lab"
  educloud summary --inventory inventories/lab
  say "verifying the charter guarantees on the lab (educloud verify)"
  educloud verify --inventory inventories/lab --output "$REPORTS/charter"
}

test_suite() {
  setup
  exec "$REPO/tests/run-all.sh"
}

case "${1:-}" in
  deploy) deploy ;;
  test) test_suite ;;
  *) echo "usage: $0 deploy|test" >&2; exit 64 ;;
esac
