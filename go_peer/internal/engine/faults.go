//go:build !interop_fault_timeout_round_up && !interop_fault_drop_empty_trailer

package engine

import (
	"time"

	"google.golang.org/grpc/metadata"
)

// The normal peer. faults_injected.go, built only with a test build tag, replaces these two hooks
// with a scratch fault that the fuzzer must find (tests/test_fuzz_faults.py); no fault is ever
// compiled into the normal peer.

// clientTimeout is the timeout a client call is given for the case's timeout_ms.
func clientTimeout(d time.Duration) time.Duration { return d }

// serverTrailer is the trailer a generic server sends for the case's expected trailers.
func serverTrailer(md metadata.MD) metadata.MD { return md }
