#!/usr/bin/env bash
# Installs what codeexec needs on Debian/Ubuntu into ./.venv; `--test` adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[[ "${1:-}" == "--test" ]] && want_tests=1

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_packages=(bubblewrap python3-venv)
if (( want_tests )); then
  # Chromium for the browser test; Ruby, PHP and Go so every detectable language is tested;
  # kafkacat (kcat) reads the Kafka adapter's topics as a third-party client; gcc compiles C
  # in the Kubernetes adapter's tests (its fake kubelet runs the launcher locally).
  apt_packages+=(chromium ruby php-cli golang-go kafkacat gcc)
  command -v npm >/dev/null || apt_packages+=(npm)
  # kubectl renders deploy/kubernetes (`kubectl kustomize`, offline) for tests/deploy. Debian's
  # kubernetes-client (kubectl 1.20, kustomize 2.0.3) renders it the same as a current kubectl.
  command -v kubectl >/dev/null || apt_packages+=(kubernetes-client)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  echo "installing apt packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if (( want_tests )); then
  .venv/bin/python -m pip install -q -e ".[test]" -e "./entrypoints[test]" \
    -e "./adapters/kafka[test]" -e "./adapters/mongo[test]" -e "./adapters/kubernetes[test]" nox
else
  .venv/bin/python -m pip install -q -e . -e ./entrypoints -e ./adapters/kafka -e ./adapters/mongo \
    -e ./adapters/kubernetes
fi
if (( want_tests )); then
  # The npm piston-client, run against our Piston API by the e2e tests (needs node and npm).
  npm ci --prefix tests/e2e/piston_client --no-audit --no-fund --loglevel=error
  # axe-core, which the console's browser tests inject to check labels and contrast.
  npm ci --prefix tests/e2e/browser/axe --no-audit --no-fund --loglevel=error
fi
echo "codeexec installed in .venv"
