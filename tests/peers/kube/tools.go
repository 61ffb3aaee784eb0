//go:build tools

// Package tools pins kube-apiserver, built by `make peers` for the Kubernetes enrichment tests.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
