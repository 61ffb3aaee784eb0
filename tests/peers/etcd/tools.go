//go:build tools

// Package tools pins etcd, built by `make peers` as kube-apiserver's storage for the
// Kubernetes enrichment tests.
package tools

import _ "go.etcd.io/etcd/server/v3"
