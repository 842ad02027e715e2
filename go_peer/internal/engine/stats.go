package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
)

// What grpc does not tell a handler or a caller directly, the engine's stats handler records per
// RPC: the compression of the messages received. The grpc-encoding of the headers received
// (stats.InHeader.Compression) is what the peer declared for every message it sends; each
// message's own compressed flag shows in its InPayload: a message sent uncompressed has
// CompressedLength == Length. A compressed one has equal lengths only when gzip did not shrink it,
// and gRPC Core legitimately sends a message uncompressed when compressing gains nothing; so a
// message is reported only when gzip shrinks it by a tenth or more (the Python side's wire
// observer uses the same rule, harness/engines/wire.py).

// rpcStats is what the engine's stats handler saw of one RPC.
type rpcStats struct {
	mu          sync.Mutex
	tagged      bool   // the engine's stats handler sees this RPC
	header      bool   // headers were received
	compression string // their grpc-encoding ("" when none)
	payloads    []payloadSeen
}

// payloadSeen is one message received: its length and, for one that came uncompressed under
// gzip, the size gzip gives it (-1: not measured).
type payloadSeen struct {
	length, gzipped int
}

type rpcStatsKey struct{}

func rpcStatsFrom(ctx context.Context) *rpcStats {
	s, _ := ctx.Value(rpcStatsKey{}).(*rpcStats)
	return s
}

// withRPCStats makes ctx carry a recorder (the client puts it in before starting the call, so
// that it can read it afterwards; on a server, TagRPC does).
func withRPCStats(ctx context.Context) (context.Context, *rpcStats) {
	s := &rpcStats{}
	return context.WithValue(ctx, rpcStatsKey{}, s), s
}

// receivedCompression names how the messages received were compressed: the grpc-encoding of the headers
// received, "identity" when they had none. Without the engine's stats handler on the channel
// or server, it says so.
func receivedCompression(s *rpcStats) string {
	if s == nil {
		return notObserved
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tagged {
		return notObserved
	}
	if !s.header || s.compression == "" {
		return "identity"
	}
	return s.compression
}

const notObserved = "<not observed: no engine stats handler>"

type statsHandler struct{}

// StatsHandler is the engine's stats handler: NewServer installs it, and so does Dial; a channel
// handed to RunCase must have it for the compression of responses to be checked.
func StatsHandler() stats.Handler { return statsHandler{} }

func (statsHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	s := rpcStatsFrom(ctx)
	if s == nil {
		ctx, s = withRPCStats(ctx)
	}
	s.mu.Lock()
	s.tagged = true
	s.mu.Unlock()
	return ctx
}

func (statsHandler) HandleRPC(ctx context.Context, st stats.RPCStats) {
	s := rpcStatsFrom(ctx)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev := st.(type) {
	case *stats.InHeader:
		s.header, s.compression = true, ev.Compression
	case *stats.InPayload:
		seen := payloadSeen{length: ev.Length, gzipped: -1}
		if s.compression == "gzip" && ev.CompressedLength == ev.Length && ev.Length > 0 {
			// maybe sent as it is: measure now, the payload may be reused after this call returns
			if m, ok := ev.Payload.(proto.Message); ok {
				seen.gzipped = gzipSize(m)
			}
		}
		s.payloads = append(s.payloads, seen)
	}
}

// gzipSize is the size of a message through gzip at its default level (grpc-go's gzip compressor).
func gzipSize(m proto.Message) int {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return -1
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Len()
}

// receivedUncompressed says which messages came uncompressed under gzip although gzip shrinks
// them by a tenth or more; "" when none did.
func receivedUncompressed(s *rpcStats) string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad []int
	for i, p := range s.payloads {
		if p.gzipped >= 0 && p.gzipped*10 <= p.length*9 {
			bad = append(bad, i)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return uncompressedText(len(bad), len(s.payloads), bad[0], s.payloads[bad[0]].length)
}

// uncompressedText is what a diff says of such messages (the Python side writes the same).
func uncompressedText(bad, total, first, length int) string {
	return fmt.Sprintf("gzip declared, but %d of %d messages sent uncompressed (compressed flag 0), first "+
		"message [%d] of %d bytes, which gzip shrinks", bad, total, first, length)
}

func (statsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (statsHandler) HandleConn(context.Context, stats.ConnStats) {}
