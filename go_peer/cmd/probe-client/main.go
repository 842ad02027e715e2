// Command probe-client is the Go client flavour of `grpc-interop probe`, alone: the same code as
// `interop-peer probe-client`, in a binary built from go_peer's sources without any proto set
// (the probe sends raw bytes and reads descriptors at run time), so `--reflection` needs no protos.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-interop-harness/go_peer/internal/probe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := probe.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
