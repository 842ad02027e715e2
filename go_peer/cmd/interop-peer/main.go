// Command interop-peer is the Go peer of grpc-interop-harness: one static binary with a gRPC
// server and a case-running client for every service of the proto set it was built with.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/grpc-interop-harness/go_peer/gen/glue"
	"github.com/grpc-interop-harness/go_peer/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
