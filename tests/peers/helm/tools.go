//go:build tools

// Package tools pins helm, built from its Go module by `make peers` for the chart tests
// (helm lint, helm template). Nothing here is committed as a binary.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
