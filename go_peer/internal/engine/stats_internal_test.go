package engine

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The header alone proved nothing: a peer that declared gzip and sent every message with its
// compressed flag at 0 passed. Each InPayload says for itself (CompressedLength == Length: sent as
// it is), and a message that gzip shrinks must not come so.
func TestEveryMessageMustArriveCompressedUnderGzip(t *testing.T) {
	bulk := wrapperspb.String(strings.Repeat("x", 2048))
	noise := make([]byte, 0, 640)
	for i := range 20 {
		sum := sha256.Sum256([]byte{byte(i)})
		noise = append(noise, sum[:]...)
	}
	random := wrapperspb.Bytes(noise) // gzip would not shrink it
	size := func(m proto.Message) int { return proto.Size(m) }
	for _, tc := range []struct {
		name       string
		encoding   string
		msg        proto.Message
		compressed int // CompressedLength; 0: the same as Length (sent as it is)
		want       string
	}{
		{"flag 0 under gzip", "gzip", bulk, 0, "gzip declared, but 1 of 1 messages sent uncompressed (compressed flag 0), " +
			"first message [0] of 2051 bytes, which gzip shrinks"},
		{"compressed", "gzip", bulk, 40, ""},
		{"gzip would not shrink it", "gzip", random, 0, ""},
		{"identity declared", "", bulk, 0, ""},
	} {
		ctx := statsHandler{}.TagRPC(context.Background(), &stats.RPCTagInfo{})
		h := statsHandler{}
		h.HandleRPC(ctx, &stats.InHeader{Compression: tc.encoding})
		compressed := tc.compressed
		if compressed == 0 {
			compressed = size(tc.msg)
		}
		h.HandleRPC(ctx, &stats.InPayload{Payload: tc.msg, Length: size(tc.msg), CompressedLength: compressed})
		if got := receivedUncompressed(rpcStatsFrom(ctx)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
