//go:build tools

// Package kube records the commands scripts/kube.sh builds, so that `go mod tidy` keeps their
// dependencies. The build tag keeps it out of every build.
package kube

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
