# Sourced by scripts/demo and scripts/test: install what left4me needs on this machine.
# Debian packages for the test hosts, and a virtualenv with the pinned Python dependencies.
# Safe to run again: it only installs what is missing or changed.

set -euo pipefail

LEFT4ME_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$LEFT4ME_ROOT/.venv"

# debootstrap + systemd-nspawn build and boot the test hosts; zstd packs the image cache;
# iproute2 makes their network namespaces; ssh reaches them as a production host is reached.
# qemu-system-x86 + e2fsprogs boot a VM host (TCG) where cgroup limits must be shown biting.
# chromium is the browser the UI's end-to-end tests drive through Playwright.
APT_PACKAGES=(systemd-container debootstrap zstd iproute2 openssh-client curl git
              qemu-system-x86 e2fsprogs chromium)

step() { printf '\n==> %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "left4me: run this as root: it boots systemd test hosts with systemd-nspawn" >&2
  exit 1
fi

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

wanted=$(sha256sum "$LEFT4ME_ROOT/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  step "installing the pinned Python dependencies into .venv (a few minutes the first time)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$LEFT4ME_ROOT/requirements.txt"
  echo "$wanted" > "$VENV/.requirements.sha256"
fi

export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$LEFT4ME_ROOT/ansible.cfg"
cd "$LEFT4ME_ROOT"
