#!/usr/bin/env bash
# Renders the Helm chart helm/mci with the shared chart-check tool (offline, no cluster) for the
# default values, values-production.yaml and existingSecret, and asserts on the manifests:
# probes, resources, the restricted security context, secrets, HPA/PDB/NetworkPolicy.
# Prints one line per check and closes with "N passed, M failed".
#
# The tool is ../shared/tools/chart-check/chart-check relative to the repository root (CI clones
# the repository with shared/ beside it); CHART_CHECK=/path/to/chart-check overrides it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
chart="$repo/helm/mci"
chart_check="${CHART_CHECK:-$repo/../shared/tools/chart-check/chart-check}"

if [[ ! -x "$chart_check" ]]; then
  echo "chart_test: chart-check not found at $chart_check." >&2
  echo "chart_test: clone the shared tools beside the repository (../shared/tools/chart-check)" \
       "or set CHART_CHECK to the chart-check script." >&2
  echo "0 passed, 1 failed"
  exit 1
fi
if [[ ! -f "$chart/Chart.yaml" ]]; then
  echo "chart_test: no chart at $chart." >&2
  echo "0 passed, 1 failed"
  exit 1
fi
# Debian's python3-yaml serves /usr/bin/python3, which another python3 on PATH may shadow.
python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import yaml' 2>/dev/null; then python="$candidate"; break; fi
done
if [[ -z "$python" ]]; then
  echo "chart_test: python3 with PyYAML is required: apt-get install -y python3-yaml" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

exec "$python" "$here/chart_test.py" "$chart_check" "$chart"
