// registry-peer: an OCI registry (the distribution API) held in memory on 127.0.0.1, for the
// chart tests' `helm push` and `helm install oci://…`. It is go-containerregistry's registry
// package, the registry crane's and ko's own tests push to; trailhead's tests use no registry
// of their own making. It prints its address on the first line of stdout, then serves until
// killed.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry-peer:", err)
		os.Exit(1)
	}
	fmt.Println(listener.Addr().String())
	quiet := registry.Logger(log.New(io.Discard, "", 0))
	if err := http.Serve(listener, registry.New(quiet)); err != nil {
		fmt.Fprintln(os.Stderr, "registry-peer:", err)
		os.Exit(1)
	}
}
