#!/usr/bin/env bash
# Builds the binaries of the Kubernetes test cluster (kube-apiserver, etcd, kwok) from the Go module
# proxy with tools/kube/go.mod, and prints the directory that holds them (DSTACK_TEST_KUBE_BIN for the
# kubernetes backend's integration test). Debian ships none of them. kube-apiserver alone takes about
# 18 minutes on two cores, so the binaries are built once into a cache named after their versions and
# reused while it holds all three: set DSTACK_KUBE_CACHE to choose another directory.
set -euo pipefail
mod="$(cd "$(dirname "$0")/.." && pwd)/tools/kube"

version() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod"; }
k8s=$(version k8s.io/kubernetes)
etcd=$(version go.etcd.io/etcd/server/v3)
kwok=$(version sigs.k8s.io/kwok)
if [ -z "$k8s" ] || [ -z "$etcd" ] || [ -z "$kwok" ]; then
  echo "kube.sh: cannot read the versions of kubernetes, etcd and kwok from $mod/go.mod" >&2
  exit 1
fi
dir=${DSTACK_KUBE_CACHE:-${HOME}/.cache/dstack/kube-${k8s}-etcd${etcd}-kwok${kwok}}

# name=package; kwok first: it is the quickest to fail if the shared module graph does not compile.
targets=(
  "kwok=sigs.k8s.io/kwok/cmd/kwok"
  "etcd=go.etcd.io/etcd/server/v3"
  "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver"
)
# kwok simulates nodes and pods by the Stage objects of its configuration; the test uses kwok's own
# "fast" stages (nodes become Ready, pods Running, deleted pods go away), shipped in its module.
stages=(node/fast/node-initialize.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)
complete() {
  local t
  for t in "${targets[@]}"; do [ -x "$dir/${t%%=*}" ] || return 1; done
  [ -s "$dir/kwok-stages.yaml" ]
}

if ! complete; then
  mkdir -p "$dir"
  # Two test runs started together build once: the second waits for the first.
  exec 9>"$dir/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  for t in "${targets[@]}"; do
    name=${t%%=*} pkg=${t#*=}
    [ -x "$dir/$name" ] && continue
    echo "kube.sh: building $name ($pkg) into $dir" >&2
    start=$SECONDS
    # The version stamp makes kube-apiserver report v1.x instead of a development version.
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s"
    # Build next to the target and rename, so an interrupted build never leaves a binary that looks done.
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dir/.$name.tmp" "$pkg")
    mv "$dir/.$name.tmp" "$dir/$name"
    echo "kube.sh: built $name in $((SECONDS - start)) s" >&2
  done
  if [ ! -s "$dir/kwok-stages.yaml" ]; then
    src=$(cd "$mod" && go mod download sigs.k8s.io/kwok && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    for f in "${stages[@]}"; do
      cat "$src/kustomize/stage/$f"
      echo "---"
    done > "$dir/.kwok-stages.yaml.tmp"
    mv "$dir/.kwok-stages.yaml.tmp" "$dir/kwok-stages.yaml"
  fi
fi
echo "$dir"
