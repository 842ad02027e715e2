package engine

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	// Registers the gzip compressor: calls with compression "gzip" use it, and the server can
	// answer compressed (server.compression).
	_ "google.golang.org/grpc/encoding/gzip"
)

// outcome is what one RPC produced.
type outcome struct {
	// overrun: a call with no deadline had not ended at its timeout_ms, and the client cancelled it
	overrun   bool
	responses []proto.Message
	header    metadata.MD
	trailer   metadata.MD
	status    *status.Status
	// compression of the responses received (receivedCompression)
	compression string
	// the responses that came uncompressed under gzip although gzip shrinks them ("" when none)
	uncompressed string
	// peer: the server end of the call's connection, with its TLS state (set when the call ends)
	peer *peer.Peer
	// elapsed: from just before the call's deadline was set to its status (0: not measured); a call
	// that ends for its deadline cannot end before it (check)
	elapsed time.Duration
}

// invoke runs one prepared call on conn with a generic stream, whatever its streaming mode.
func invoke(ctx context.Context, conn grpc.ClientConnInterface, p *plan, caseMD metadata.MD) *outcome {
	out := &outcome{peer: &peer.Peer{}}
	start := time.Now()
	defer func() { out.elapsed = time.Since(start) }()
	if !p.call.NoDeadline {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, clientTimeout(p.timeout))
		defer cancelTimeout()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.call.NoDeadline { // a call with no deadline must still end (a harness never hangs): cut at timeout_ms
		var overrun atomic.Bool
		watchdog := time.AfterFunc(p.timeout, func() { overrun.Store(true); cancel() })
		defer func() { watchdog.Stop(); out.overrun = overrun.Load() }()
	}
	ctx = metadata.NewOutgoingContext(ctx, metadata.Join(p.md, caseMD))
	ctx, seen := withRPCStats(ctx) // filled in by the channel's engine stats handler
	mode := p.call.Streaming
	desc := &grpc.StreamDesc{
		StreamName:    p.call.Method,
		ServerStreams: mode == ModeServerStream || mode == ModeBidi,
		ClientStreams: mode == ModeClientStream || mode == ModeBidi,
	}
	opts := append([]grpc.CallOption{grpc.Peer(out.peer)}, p.opts...)
	if p.call.Compression != "" {
		opts = append(opts, grpc.UseCompressor(p.call.Compression))
	}
	if p.call.WaitForReady {
		opts = append(opts, grpc.WaitForReady(true))
	}
	if p.wire != nil { // requests_wire: the exact bytes go out (wire.go)
		opts = append(opts, grpc.ForceCodec(rawCodec{}))
	}
	stream, err := conn.NewStream(ctx, desc, p.call.Method, opts...)
	if err != nil {
		out.status = status.Convert(err)
		return out
	}
	cancelAfter := -1
	if p.call.CancelAfterResponses != nil {
		cancelAfter = *p.call.CancelAfterResponses
	}
	if cancelAfter == 0 {
		cancel()
	}
	// recv reads one response; false when the stream ended (out.status is then set). Once the
	// call is cancelled, messages grpc had already buffered are read (to reach the final status)
	// but not collected: the client stopped at cancel_after_responses.
	recv := func() bool {
		m := p.respType.New().Interface()
		err := stream.RecvMsg(m)
		switch {
		case err == nil:
			if cancelAfter >= 0 && len(out.responses) >= cancelAfter {
				return true
			}
			out.responses = append(out.responses, m)
			if len(out.responses) == cancelAfter {
				cancel()
			}
			return true
		case errors.Is(err, io.EOF):
			out.status = status.New(codes.OK, "")
		default:
			out.status = status.Convert(err)
		}
		return false
	}
	// send sends every request; false when the server already ended the stream.
	send := func(reqs []any) bool {
		for _, r := range reqs {
			if err := stream.SendMsg(r); err != nil {
				return false // io.EOF: the real status comes from RecvMsg
			}
		}
		return true
	}
	requests := make([]any, 0, len(p.requests)+len(p.wire))
	for _, r := range p.requests {
		requests = append(requests, r)
	}
	for _, b := range p.wire {
		requests = append(requests, rawFrame(b))
	}
	switch {
	case p.call.CancelAfterRequests != nil: // client_stream, half-duplex bidi: k requests, then cancel
		send(requests[:*p.call.CancelAfterRequests])
		cancel()
		for recv() {
		}
	case mode == ModeBidi && p.call.Bidi == PingPong:
		for _, r := range requests {
			if !send([]any{r}) || !recv() {
				break
			}
		}
		if out.status == nil {
			_ = stream.CloseSend()
			for recv() {
			}
		}
	case desc.ServerStreams: // server_stream, bidi half_duplex
		send(requests)
		_ = stream.CloseSend()
		for recv() {
		}
	default: // unary, client_stream: exactly one response, grpc checks the end of stream
		send(requests)
		_ = stream.CloseSend()
		if recv() {
			out.status = status.New(codes.OK, "")
		}
	}
	if md, err := stream.Header(); err == nil {
		out.header = md
	}
	out.trailer = stream.Trailer()
	out.compression = receivedCompression(seen)
	out.uncompressed = receivedUncompressed(seen)
	return out
}
