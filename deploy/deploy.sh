#!/usr/bin/env bash
# Installs the MathTrail observability stack into namespace "monitoring", in order: the
# backends (Tempo, Loki, Mimir, Pyroscope, Grafana), Alloy (grafana/k8s-monitoring, release
# "lgtm"), then trailhead, then the Dapr Configurations. Every step is `helm upgrade --install
# --wait`, so running it again is safe.
#
# trailhead's chart comes from the mathtrail-charts repository (what `make chart` builds, served
# from anywhere) when MATHTRAIL_CHARTS_URL is set, from deploy/helm/trailhead otherwise.
#
# DRY_RUN=1 renders everything to deploy/rendered/ (releases/, dapr/, dashboards/; OUT= moves
# it, OFFLINE=1 skips the chart repositories) without a cluster. trailhead's chart and
# the raw manifests always render; the third-party charts need their repositories
# (grafana, grafana-community) to be reachable, and are skipped with a note when they are not.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=${HELM:-tests/peers/bin/helm}
NS=monitoring
STACK=deploy/stack
OUT=${OUT:-deploy/rendered}
DRY_RUN=${DRY_RUN:-}
TRAILHEAD_CHART=deploy/helm/trailhead
if [[ -n "${MATHTRAIL_CHARTS_URL:-}" ]]; then TRAILHEAD_CHART=mathtrail-charts/trailhead; fi

# release  chart  values
RELEASES=(
  "tempo grafana-community/tempo $STACK/tempo.values.yaml"
  "loki grafana-community/loki $STACK/loki.values.yaml"
  "mimir grafana/mimir-distributed $STACK/mimir.values.yaml"
  "pyroscope grafana/pyroscope $STACK/pyroscope.values.yaml"
  "grafana grafana-community/grafana $STACK/grafana.values.yaml"
  "lgtm grafana/k8s-monitoring $STACK/k8s-monitoring.values.yaml"
  "trailhead $TRAILHEAD_CHART $STACK/trailhead.values.yaml"
)

# Our own repository, when configured: needed even offline (it may be served on this network).
own_repo() {
  if [[ -n "${MATHTRAIL_CHARTS_URL:-}" ]]; then
    "$HELM" repo add mathtrail-charts "$MATHTRAIL_CHARTS_URL" --force-update >/dev/null
  fi
}

repos() {
  "$HELM" repo add grafana https://grafana.github.io/helm-charts --force-update >/dev/null &&
    "$HELM" repo add grafana-community https://grafana-community.github.io/helm-charts --force-update >/dev/null &&
    "$HELM" repo update >/dev/null
}

if [[ -n "$DRY_RUN" ]]; then
  # One folder per kind of file, so no manifest overwrites another of the same name (the
  # dashboards' trailhead.yaml used to replace the rendered chart).
  rm -rf "$OUT" && mkdir -p "$OUT/releases" "$OUT/dapr" "$OUT/dashboards"
  own_repo
  online=0
  if [[ -z "${OFFLINE:-}" ]]; then
    online=1
    repos 2>/dev/null || { online=0; echo "note: chart repositories unreachable; rendering trailhead and the raw manifests only"; }
  fi
  for release in "${RELEASES[@]}"; do
    read -r name chart values <<<"$release"
    if [[ $chart == deploy/* || $chart == mathtrail-charts/* || $online == 1 ]]; then
      "$HELM" template "$name" "$chart" --namespace "$NS" -f "$values" >"$OUT/releases/$name.yaml"
      echo "rendered $OUT/releases/$name.yaml"
    else
      echo "skipped $name ($chart): repository unreachable"
    fi
  done
  cp "$STACK"/dapr/*.yaml "$OUT/dapr/"
  cp "$STACK"/dashboards/*.yaml "$OUT/dashboards/"
  exit 0
fi

own_repo
repos
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS"
for release in "${RELEASES[@]}"; do
  read -r name chart values <<<"$release"
  echo "installing $name ($chart)"
  "$HELM" upgrade --install "$name" "$chart" --namespace "$NS" -f "$values" --wait --timeout 10m
done
kubectl apply -f "$STACK"/dashboards/
for namespace in $(sed -n 's/^  namespace: *//p' "$STACK"/dapr/*.yaml | sort -u); do
  kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace"
done
kubectl apply -f "$STACK"/dapr/
