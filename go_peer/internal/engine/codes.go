package engine

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// codeNames are the canonical gRPC status code names (as in the gRPC spec and grpcio's
// StatusCode), which the contract uses; Go's codes.Code.String() spells them differently.
var codeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// CodeName returns the canonical UPPER_SNAKE name of a status code ("CODE_<n>" when unknown).
func CodeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

// CodeByName is the inverse of CodeName: the canonical names, and CODE_<n> for a code outside
// gRPC's 0-16 (a server may send one; cases say what a receiver makes of it).
func CodeByName(name string) (codes.Code, bool) {
	for c, n := range codeNames {
		if n == name {
			return codes.Code(c), true
		}
	}
	if digits, ok := strings.CutPrefix(name, "CODE_"); ok {
		if n, err := strconv.ParseUint(digits, 10, 32); err == nil && n >= uint64(len(codeNames)) && "CODE_"+strconv.FormatUint(n, 10) == name {
			return codes.Code(n), true
		}
	}
	return 0, false
}
