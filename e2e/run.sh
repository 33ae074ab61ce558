#!/usr/bin/env bash
# agentfleet end to end on kind: the install path a platform team takes, then a user's
# conversation, then a failure.
#
#   1. create a kind cluster                      6. talk to the agent over HTTP and WebSocket
#   2. build the runtime and operator images      7. kill every pod of the agent
#   3. load them into the cluster                 8. check the conversation survived (Redis)
#   4. install the chart (bundled Redis)             and goes on
#   5. apply examples/, wait for Ready            9. tear the cluster down
#
# Needs: docker (a running engine), kind, kubectl, helm, and uv or python3 with this
# project's packages (e2e/converse.py uses httpx2 and websockets). Run from anywhere:
#   e2e/run.sh
# Knobs (environment): CLUSTER_NAME (agentfleet-e2e), KEEP_CLUSTER=1 (do not delete it),
# REUSE_CLUSTER=1 (use an existing cluster of that name), SKIP_BUILD=1 (images already
# loaded), IMAGE_TAG (e2e), KIND_NODE_IMAGE (kind's default), WAIT_TIMEOUT (300s).
# pytest runs it through e2e/test_e2e.py (marker e2e) when kind and a Docker engine exist.
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

CLUSTER_NAME=${CLUSTER_NAME:-agentfleet-e2e}
IMAGE_TAG=${IMAGE_TAG:-e2e}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-300s}
RUNTIME_IMAGE="ghcr.io/agentfleet/runtime:$IMAGE_TAG"
OPERATOR_IMAGE="ghcr.io/agentfleet/operator:$IMAGE_TAG"
SYSTEM_NS=agentfleet-system
AGENTS_NS=agentfleet-e2e
AGENT=demo
LOCAL_PORT=${LOCAL_PORT:-18080}
workdir=$(mktemp -d)
port_forward_pid=""
created_cluster=false

log() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'e2e: FAILED: %s\n' "$*" >&2; exit 1; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed on PATH"
  done
}

helm_bin() {
  if command -v helm >/dev/null 2>&1; then
    command -v helm
  elif [[ -x "$root/.tools/delivery/bin/helm" ]]; then
    echo "$root/.tools/delivery/bin/helm"
  else
    die "helm is needed (scripts/install-delivery-tools installs it into .tools/delivery/bin)"
  fi
}

python_cmd() {
  if command -v uv >/dev/null 2>&1; then
    uv run --frozen python "$@"
  else
    "$root/scripts/uv" run --frozen python "$@"
  fi
}

diagnostics() {
  log "diagnostics"
  kubectl get nodes -o wide || true
  kubectl get agents,mcpservers,resiliencepolicies -A -o wide || true
  kubectl get all -n "$SYSTEM_NS" -o wide || true
  kubectl get all -n "$AGENTS_NS" -o wide || true
  kubectl describe agents -n "$AGENTS_NS" || true
  kubectl logs -n "$SYSTEM_NS" -l app.kubernetes.io/name=agentfleet-operator --tail=200 || true
  kubectl logs -n "$AGENTS_NS" -l app.kubernetes.io/name=agentfleet-agent --tail=100 || true
  kubectl get events -A --sort-by=.lastTimestamp | tail -n 60 || true
}

stop_port_forward() {
  if [[ -n "$port_forward_pid" ]]; then
    kill "$port_forward_pid" 2>/dev/null || true
    wait "$port_forward_pid" 2>/dev/null || true
    port_forward_pid=""
  fi
}

cleanup() {
  local status=$?
  stop_port_forward
  if ((status != 0)); then
    diagnostics
  fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 || "$created_cluster" != true ]]; then
    log "keeping cluster $CLUSTER_NAME (kind delete cluster --name $CLUSTER_NAME)"
  else
    log "deleting cluster $CLUSTER_NAME"
    kind delete cluster --name "$CLUSTER_NAME" || true
  fi
  rm -rf "$workdir"
  if ((status == 0)); then
    log "e2e passed"
  fi
  exit "$status"
}
trap cleanup EXIT

# Forward LOCAL_PORT to the agent's Service, and wait until the runtime answers through it.
port_forward() {
  stop_port_forward
  kubectl -n "$AGENTS_NS" port-forward "service/$AGENT" "$LOCAL_PORT:80" \
    >"$workdir/port-forward.log" 2>&1 &
  port_forward_pid=$!
  local _
  for _ in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$LOCAL_PORT/healthz/ready" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  cat "$workdir/port-forward.log" >&2
  die "the agent did not answer through kubectl port-forward"
}

wait_ready() {
  kubectl -n "$AGENTS_NS" wait "$@" --for=condition=Ready --timeout="$WAIT_TIMEOUT"
}

need docker kind kubectl curl
docker info >/dev/null 2>&1 || die "no Docker engine: 'docker info' failed"
HELM=$(helm_bin)

log "1. kind cluster $CLUSTER_NAME"
if [[ "${REUSE_CLUSTER:-0}" == 1 ]] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "reusing cluster $CLUSTER_NAME" >&2
else
  kind_args=(create cluster --name "$CLUSTER_NAME" --config e2e/kind-config.yaml --wait 120s)
  if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
    kind_args+=(--image "$KIND_NODE_IMAGE")
  fi
  kind "${kind_args[@]}"
  created_cluster=true
fi
kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "2. build images ($IMAGE_TAG)"
  docker build --target runtime --tag "$RUNTIME_IMAGE" \
    --build-arg VERSION="$IMAGE_TAG" --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
  docker build --target operator --tag "$OPERATOR_IMAGE" \
    --build-arg VERSION="$IMAGE_TAG" --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
  log "3. load images into kind"
  kind load docker-image --name "$CLUSTER_NAME" "$RUNTIME_IMAGE" "$OPERATOR_IMAGE"
fi

log "4. install the chart"
"$HELM" upgrade --install agentfleet charts/agentfleet \
  --namespace "$SYSTEM_NS" --create-namespace \
  --values e2e/values.yaml \
  --set operator.image.tag="$IMAGE_TAG" --set runtime.image.tag="$IMAGE_TAG" \
  --wait --timeout "$WAIT_TIMEOUT"
kubectl -n "$SYSTEM_NS" rollout status deployment/agentfleet-operator --timeout="$WAIT_TIMEOUT"
kubectl -n "$SYSTEM_NS" rollout status statefulset/agentfleet-redis --timeout="$WAIT_TIMEOUT"
for crd in agents mcpservers resiliencepolicies secretbindings; do
  kubectl wait "crd/$crd.agentfleet.dev" --for=condition=Established --timeout=60s
done

log "5. apply the examples and wait for Ready"
kubectl create namespace "$AGENTS_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$AGENTS_NS" apply -f e2e/manifests/fake-llm.yaml
kubectl -n "$AGENTS_NS" rollout status deployment/fake-llm --timeout="$WAIT_TIMEOUT"
kubectl -n "$AGENTS_NS" apply -f examples/resilience-policy.yaml
kubectl -n "$AGENTS_NS" apply -f examples/demo-agent.yaml
# Two replicas: a conversation must not depend on the pod that served it.
kubectl -n "$AGENTS_NS" patch agent "$AGENT" --type merge \
  -p '{"spec": {"deployment": {"replicas": 2}}}'
wait_ready mcpserver/demo-tools
wait_ready resiliencepolicy --all
wait_ready "agent/$AGENT"
kubectl -n "$AGENTS_NS" get agents,mcpservers,resiliencepolicies,deployments,pods -o wide

log "6. converse over HTTP and WebSocket"
port_forward
url="http://127.0.0.1:$LOCAL_PORT"
python_cmd e2e/converse.py start --url "$url" --agent "$AGENT" >"$workdir/session"
session=$(<"$workdir/session")
[[ -n "$session" ]] || die "no session id"
python_cmd e2e/converse.py websocket --url "$url" --session "$session"

log "7. kill every pod of agent $AGENT"
stop_port_forward
kubectl -n "$AGENTS_NS" delete pod --wait=false --grace-period=0 --force \
  -l "app.kubernetes.io/name=agentfleet-agent,app.kubernetes.io/instance=$AGENT"
# The Deployment replaces them; Ready comes back once every replica is ready again.
sleep 5
kubectl -n "$AGENTS_NS" rollout status "deployment/$AGENT" --timeout="$WAIT_TIMEOUT"
wait_ready "agent/$AGENT"

log "8. the conversation survived"
port_forward
python_cmd e2e/converse.py survived --url "$url" --session "$session" --min-messages 4
