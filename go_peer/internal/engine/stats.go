package engine

import (
	"context"
	"sync"

	"google.golang.org/grpc/stats"
)

// What grpc does not tell a handler or a caller directly, the engine's stats handler records per
// RPC: the compression of the messages received. The signal is the grpc-encoding of the headers
// received (stats.InHeader.Compression): it is what the peer declared for every message it
// sends. The per-message compressed flag is not observable (InPayload.CompressedLength equals
// Length both for an uncompressed message and, by chance, for a compressed one), and gRPC Core
// legitimately sends a message uncompressed when compressing would not make it smaller, so the
// flag would not be a reliable check anyway.

// rpcStats is what the engine's stats handler saw of one RPC.
type rpcStats struct {
	mu          sync.Mutex
	tagged      bool   // the engine's stats handler sees this RPC
	header      bool   // headers were received
	compression string // their grpc-encoding ("" when none)
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
	h, ok := st.(*stats.InHeader)
	if !ok {
		return
	}
	if s := rpcStatsFrom(ctx); s != nil {
		s.mu.Lock()
		s.header, s.compression = true, h.Compression
		s.mu.Unlock()
	}
}

func (statsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (statsHandler) HandleConn(context.Context, stats.ConnStats) {}
