package probe

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Streaming modes of a probe call.
const (
	Unary        = "unary"
	ServerStream = "server_stream"
	ClientStream = "client_stream"
	Bidi         = "bidi"
)

// Call is one probe call (docs/probe-clients.md, "One probe call, one outcome"): requests are serialized
// messages (base64 in JSON); metadata values of "-bin" keys are base64 of their bytes.
type Call struct {
	ID                   string              `json:"id"`
	Method               string              `json:"method"` // pkg.Service/Method
	Streaming            string              `json:"streaming"`
	Requests             [][]byte            `json:"requests"`
	Metadata             map[string][]string `json:"metadata"`
	TimeoutMS            int64               `json:"timeout_ms"`
	CancelAfterResponses *int                `json:"cancel_after_responses"`
}

// Outcome is what one call produced, as every client flavour reports it. Code is the status code
// the client library reports; Error is set when the call could not be made as asked (a bad probe
// call: Code is then -1) or never reached the server (could not connect: Code is UNAVAILABLE's).
type Outcome struct {
	ID        string              `json:"id"`
	Code      int                 `json:"code"`
	Message   string              `json:"message"`
	Details   *string             `json:"details"`
	Responses [][]byte            `json:"responses"`
	Headers   map[string][]string `json:"headers"`
	Trailers  map[string][]string `json:"trailers"`
	ElapsedMS float64             `json:"elapsed_ms"`
	Error     *string             `json:"error"`
	Decoded   []Decoded           `json:"decoded"`
}

// NotMade is the code of an outcome whose call was never started (a bad probe call).
const NotMade = -1

// detailsKey is the trailer holding the serialized google.rpc.Status.
const detailsKey = "grpc-status-details-bin"

func (c *Call) validate() error {
	switch c.Streaming {
	case Unary, ServerStream:
		if len(c.Requests) != 1 {
			return fmt.Errorf("a %s call sends exactly one request, the probe call has %d", c.Streaming, len(c.Requests))
		}
	case ClientStream, Bidi:
	default:
		return fmt.Errorf("streaming %q is not unary, server_stream, client_stream or bidi", c.Streaming)
	}
	if service, method, ok := strings.Cut(c.Method, "/"); !ok || service == "" || method == "" || strings.Contains(method, "/") {
		return fmt.Errorf("method %q is not pkg.Service/Method", c.Method)
	}
	if c.CancelAfterResponses != nil && *c.CancelAfterResponses < 0 {
		return fmt.Errorf("cancel_after_responses must not be negative, got %d", *c.CancelAfterResponses)
	}
	return nil
}

// outgoing turns the call's metadata into grpc-go's: "-bin" values arrive as base64 and go to
// grpc-go as their bytes (grpc-go encodes them on the wire itself).
func (c *Call) outgoing() (metadata.MD, error) {
	md := metadata.MD{}
	for k, vs := range c.Metadata {
		for _, v := range vs {
			if strings.HasSuffix(strings.ToLower(k), "-bin") {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					return nil, fmt.Errorf("metadata %s: a -bin value is base64 of its bytes: %v", k, err)
				}
				v = string(b)
			}
			md.Append(k, v)
		}
	}
	return md, nil
}

// asJSON is metadata as the outcome carries it: "-bin" values as base64 of their bytes.
func asJSON(md metadata.MD) map[string][]string {
	out := map[string][]string{}
	for k, vs := range md {
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

// invoke makes one call on conn with a generic stream, whatever its streaming mode. The requests
// are sent from their own goroutine while the responses are read, as a generated client's bidi
// and client-streaming calls do, so a server that answers before the client half-closes is not
// held up by flow control.
func invoke(ctx context.Context, conn grpc.ClientConnInterface, c *Call, opts []grpc.CallOption, extra metadata.MD) *Outcome {
	out := &Outcome{ID: c.ID, Responses: [][]byte{}, Headers: map[string][]string{}, Trailers: map[string][]string{}}
	fail := func(err error) *Outcome {
		msg := err.Error()
		out.Code, out.Error = NotMade, &msg
		return out
	}
	if err := c.validate(); err != nil {
		return fail(err)
	}
	md, err := c.outgoing()
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	defer func() { out.ElapsedMS = math.Round(float64(time.Since(start).Microseconds())) / 1000 }()
	if c.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, metadata.Join(md, extra)))
	defer cancel()
	desc := &grpc.StreamDesc{
		StreamName:    c.Method,
		ServerStreams: c.Streaming == ServerStream || c.Streaming == Bidi,
		ClientStreams: c.Streaming == ClientStream || c.Streaming == Bidi,
	}
	p := &peer.Peer{}
	st := func() *status.Status {
		stream, err := conn.NewStream(ctx, desc, "/"+c.Method, append([]grpc.CallOption{grpc.Peer(p)}, opts...)...)
		if err != nil {
			return status.Convert(err)
		}
		defer func() {
			if h, err := stream.Header(); err == nil {
				out.Headers = asJSON(h)
			}
			out.Trailers = asJSON(stream.Trailer())
		}()
		limit := -1
		if c.CancelAfterResponses != nil {
			limit = *c.CancelAfterResponses
		}
		if limit == 0 {
			cancel()
		}
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for _, r := range c.Requests {
				if stream.SendMsg(&Frame{Bytes: r}) != nil {
					return // the call ended: RecvMsg has its status
				}
			}
			_ = stream.CloseSend()
		}()
		defer func() { cancel(); <-sent }() // a sender blocked on flow control ends with the call
		for {
			f := &Frame{}
			err := stream.RecvMsg(f)
			if errors.Is(err, io.EOF) {
				return status.New(codes.OK, "")
			}
			if err != nil {
				return status.Convert(err)
			}
			if limit < 0 || len(out.Responses) < limit {
				out.Responses = append(out.Responses, f.Bytes)
				if len(out.Responses) == limit {
					cancel()
				}
			}
			if !desc.ServerStreams { // grpc-go checked that the single response ended the stream
				return status.New(codes.OK, "")
			}
		}
	}()
	out.Code, out.Message = int(st.Code()), st.Message()
	if raw := out.Trailers[detailsKey]; len(raw) == 1 {
		out.Details = &raw[0] // what the server sent, as base64; st is grpc-go's reading of it
	}
	if st.Code() == codes.Unavailable && p.Addr == nil { // no connection ever carried it
		msg := "could not connect: " + st.Message()
		out.Error = &msg
	}
	return out
}
