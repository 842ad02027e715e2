//go:build interop_fault_timeout_round_up || interop_fault_drop_empty_trailer

package engine

import (
	"time"

	"google.golang.org/grpc/metadata"
)

// Scratch faults for tests/test_fuzz_faults.py, compiled only with their build tag: the fuzzer must
// find each and shrink it to a minimal example. Never part of the normal peer (faults.go).

// clientTimeout, under interop_fault_timeout_round_up: a client that rounds its timeout up to whole
// seconds (so the grpc-timeout it sends is later than the deadline it was given).
func clientTimeout(d time.Duration) time.Duration {
	if faultTimeoutRoundUp {
		if r := d % time.Second; r != 0 {
			return d - r + time.Second
		}
	}
	return d
}

// serverTrailer, under interop_fault_drop_empty_trailer: a server that drops every trailer key
// holding an empty value.
func serverTrailer(md metadata.MD) metadata.MD {
	if !faultDropEmptyTrailer {
		return md
	}
	out := metadata.MD{}
	for k, vs := range md {
		keep := true
		for _, v := range vs {
			if v == "" {
				keep = false
			}
		}
		if keep {
			out[k] = vs
		}
	}
	return out
}
