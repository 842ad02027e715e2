package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The generic server (docs/peer-contract.md, "Generic services"). The generated glue hands every
// call to one of Unary, ServerStream, ClientStream or Bidi with the service's hand-written
// fallback (nil when there is none) and the method to call on it. Per call:
//   - the server's catalogue has the case (interop-case): the engine answers as call
//     interop-call of that case says;
//   - else the fallback answers;
//   - else UNIMPLEMENTED.

// Unary serves a unary method.
func Unary[S, Req, Resp any](ctx context.Context, method string, req *Req, fallback S,
	impl func(S, context.Context, *Req) (*Resp, error)) (*Resp, error) {
	sc, err := dispatch(ctx, method, any(fallback) != nil)
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return impl(fallback, ctx, req)
	}
	r := &rpc{
		ctx: ctx, mode: ModeUnary, first: any(req).(proto.Message),
		newReq: newMessage[Req], newResp: newMessage[Resp],
		setHeader: func(md metadata.MD) error { return grpc.SetHeader(ctx, md) },
		setTrailer: func(md metadata.MD) {
			_ = grpc.SetTrailer(ctx, md)
		},
	}
	resp, err := sc.answer(r)
	if err != nil || resp == nil { // nil: server.end return_none (or abort with OK), a nil *Resp
		return nil, err
	}
	return any(resp).(*Resp), nil
}

// ServerStream serves a server-streaming method.
func ServerStream[S, Req, Resp any](stream grpc.ServerStreamingServer[Resp], method string, req *Req, fallback S,
	impl func(S, *Req, grpc.ServerStreamingServer[Resp]) error) error {
	r := streamRPC(stream, ModeServerStream, newMessage[Req], newMessage[Resp])
	r.first = any(req).(proto.Message)
	return streaming(stream, method, any(fallback) != nil, r, func() error { return impl(fallback, req, stream) })
}

// ClientStream serves a client-streaming method.
func ClientStream[S, Req, Resp any](stream grpc.ClientStreamingServer[Req, Resp], method string, fallback S,
	impl func(S, grpc.ClientStreamingServer[Req, Resp]) error) error {
	r := streamRPC(stream, ModeClientStream, newMessage[Req], newMessage[Resp])
	return streaming(stream, method, any(fallback) != nil, r, func() error { return impl(fallback, stream) })
}

// Bidi serves a bidi-streaming method.
func Bidi[S, Req, Resp any](stream grpc.BidiStreamingServer[Req, Resp], method string, fallback S,
	impl func(S, grpc.BidiStreamingServer[Req, Resp]) error) error {
	r := streamRPC(stream, ModeBidi, newMessage[Req], newMessage[Resp])
	return streaming(stream, method, any(fallback) != nil, r, func() error { return impl(fallback, stream) })
}

// streaming dispatches a streaming call: the engine answers it through r when the catalogue has
// its case, else the fallback does.
func streaming(stream grpc.ServerStream, method string, hasFallback bool, r *rpc, fallback func() error) error {
	sc, err := dispatch(stream.Context(), method, hasFallback)
	if err != nil {
		return err
	}
	if sc == nil {
		return fallback()
	}
	_, err = sc.answer(r)
	return err
}

func newMessage[T any]() proto.Message { return any(new(T)).(proto.Message) }

// rpc is one running call as the generic server sees it, whatever its streaming mode.
type rpc struct {
	ctx        context.Context
	mode       string
	first      proto.Message // unary, server_stream: the request grpc already read
	stream     grpc.ServerStream
	newReq     func() proto.Message
	newResp    func() proto.Message
	setHeader  func(metadata.MD) error
	setTrailer func(metadata.MD)
}

func streamRPC(s grpc.ServerStream, mode string, newReq, newResp func() proto.Message) *rpc {
	return &rpc{
		ctx: s.Context(), mode: mode, stream: s, newReq: newReq, newResp: newResp,
		setHeader: s.SetHeader, setTrailer: s.SetTrailer,
	}
}

func (r *rpc) recv() (proto.Message, error) {
	m := r.newReq()
	if err := r.stream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

// dispatch decides who answers a call: a catalogue case (returned), the fallback (nil, nil) or
// nobody (UNIMPLEMENTED); a call that does not match its case is FAILED_PRECONDITION.
func dispatch(ctx context.Context, method string, hasFallback bool) (*servedCall, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	name := firstValue(md, CaseKey)
	var cat *Catalogue
	if l := serverFrom(ctx); l != nil {
		cat = l.cat
	}
	cc := cat.lookup(name)
	if cc == nil {
		if hasFallback {
			return nil, nil
		}
		service := strings.TrimPrefix(method, "/")
		if i := strings.LastIndexByte(service, '/'); i >= 0 {
			service = service[:i]
		}
		return nil, status.Errorf(codes.Unimplemented, "no case %q in the catalogue and no implementation of %s", name, service)
	}
	if cc.err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "catalogue case %s: %v", cc.name, cc.err)
	}
	index := 0
	if v := firstValue(md, CallKey); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "case %s: %s %q is not a call index", cc.name, CallKey, v)
		}
		index = i
	}
	if index >= len(cc.calls) {
		return nil, status.Errorf(codes.FailedPrecondition, "case %s has no call %d", cc.name, index)
	}
	sc := cc.calls[index]
	if sc.call.Method != method {
		return nil, status.Errorf(codes.FailedPrecondition, "case %s call %d is for %s, not %s", cc.name, index, sc.call.Method, method)
	}
	if sc.err != nil {
		return nil, status.Error(codes.FailedPrecondition, sc.err.Error())
	}
	return sc, nil
}

func firstValue(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// ServerDiff is one finding of a generic server, as sent in the ServerDiffsKey trailer.
type ServerDiff struct {
	Path     string `json:"path"`
	Expected string `json:"expected"`
	Got      string `json:"got"`
}

// findings adds to trailer what the server found (logged too) and, always, that it checked the
// call, having compared read requests: the client tells "checked, nothing found" from "not
// checked".
func (sc *servedCall) findings(ctx context.Context, d *differ, trailer metadata.MD, read int) metadata.MD {
	if len(d.diffs) > 0 {
		found := make([]ServerDiff, len(d.diffs))
		log := serverFrom(ctx)
		for i, x := range d.diffs {
			found[i] = ServerDiff{Path: x.Path, Expected: x.Expected, Got: x.Got}
			line := fmt.Sprintf("[%s] server: %s: expected %s, got %s\n", sc.caseName, x.Path, x.Expected, x.Got)
			if log != nil {
				log.printf("%s", line)
			} else {
				fmt.Fprint(os.Stderr, line)
			}
		}
		b, _ := json.Marshal(found)
		trailer.Append(ServerDiffsKey, string(b))
	}
	trailer.Set(ServerCheckedKey, strconv.Itoa(read))
	return trailer
}

// answer serves the call and confirms the status it ends with (ServerStatusKey), from the very
// error handed back to grpc-go, so the confirmation cannot differ from what the engine sent.
func (sc *servedCall) answer(r *rpc) (proto.Message, error) {
	resp, err := sc.serve(r)
	r.setTrailer(metadata.MD{ServerStatusKey: []string{CodeName(status.Code(err))}})
	return resp, err
}

// raised is what a handler told to raise returns (server.end raise): a plain error, not a status,
// which grpc-go sends as UNKNOWN with the error's text.
type raised struct{ text string }

func (e raised) Error() string { return e.text }

// serve answers one call as its case says. For a unary call it returns the response.
func (sc *servedCall) serve(r *rpc) (proto.Message, error) {
	c := sc.call
	spec := c.Server
	if spec == nil {
		spec = &ServerSpec{}
	}
	defect := func(format string, args ...any) error {
		return status.Errorf(codes.FailedPrecondition, "case %s call %d: %s", sc.caseName, sc.index, fmt.Sprintf(format, args...))
	}
	// The messages in the server's own types.
	expReqs := make([]proto.Message, len(c.Requests))
	for i, raw := range c.Requests {
		expReqs[i] = r.newReq()
		if err := unmarshalBulk(raw, expReqs[i]); err != nil {
			return nil, defect("requests[%d] is not a valid %s: %v", i, expReqs[i].ProtoReflect().Descriptor().FullName(), err)
		}
	}
	var responses []proto.Message
	for i, b := range sc.responsesWire { // parsed by this peer's library, sent as it serializes them
		m := r.newResp()
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, defect("server.responses_wire[%d] is not a valid %s: %v", i, m.ProtoReflect().Descriptor().FullName(), err)
		}
		responses = append(responses, m)
	}
	send := c.Expect.Responses
	if spec.Responses != nil {
		send = spec.Responses
	}
	if send != nil {
		for i, raw := range *send {
			m := r.newResp()
			if err := unmarshalBulk(raw, m); err != nil {
				return nil, defect("expect.responses[%d] is not a valid %s: %v", i, m.ProtoReflect().Descriptor().FullName(), err)
			}
			responses = append(responses, m)
		}
	}

	// 1. delay: first, or before response DelayAfter (send)
	wait := func() error {
		if spec.IgnoreEnd { // sleeps through a cancel or the deadline, then goes on
			time.Sleep(time.Duration(spec.DelayMS * float64(time.Millisecond)))
			return nil
		}
		t := time.NewTimer(time.Duration(spec.DelayMS * float64(time.Millisecond)))
		select {
		case <-t.C:
			return nil
		case <-r.ctx.Done():
			t.Stop()
			return status.FromContextError(r.ctx.Err()).Err()
		}
	}
	if spec.DelayMS > 0 && spec.DelayAfter == nil {
		if err := wait(); err != nil {
			return nil, err
		}
	}
	sendAt := func(i int) error {
		if spec.DelayMS > 0 && spec.DelayAfter != nil && *spec.DelayAfter == i {
			if err := wait(); err != nil {
				return err
			}
		}
		return r.stream.SendMsg(responses[i])
	}
	// 2. request metadata
	d := &differ{tol: c.Expect.FloatTolerance}
	md, _ := metadata.FromIncomingContext(r.ctx)
	want := c.Metadata
	if spec.Metadata != nil {
		want = spec.Metadata
	}
	d.metadata("server.metadata", want, md)
	if spec.CheckDeadline {
		want := c.TimeoutMS
		if c.NoDeadline {
			want = nil
		}
		checkDeadline(r.ctx, want, d)
	}
	if sc.channel != nil {
		checkChannel(r.ctx, *sc.channel, d)
		if sc.channel.Refused { // the handshake was to fail: no call may arrive
			d.add("server.channel.refused", "no call (a refused handshake)", "the call arrived")
		}
	}
	// A call that must carry a token and does not is refused before anything is read; the server
	// still says it checked it (and what it found), so a client cannot pass by never reaching it.
	if spec.RequireToken != "" && !slices.Equal(md.Get("authorization"), []string{"Bearer " + spec.RequireToken}) {
		read := 0
		if r.first != nil {
			read = 1
		}
		r.setTrailer(sc.findings(r.ctx, d, metadata.MD{}, read))
		return nil, status.Error(codes.Unauthenticated, "bearer token required")
	}

	if spec.Compression != "" {
		if err := grpc.SetSendCompressor(r.ctx, spec.Compression); err != nil {
			d.add("server.compression", spec.Compression, "not accepted by the client: "+err.Error())
		}
	}
	if sc.header.Len() > 0 {
		if err := r.setHeader(sc.header); err != nil {
			return nil, err
		}
	}

	// 3. read requests (ping-pong answers as it reads)
	limit := -1
	if spec.ReadRequests != nil {
		limit = *spec.ReadRequests
	}
	var got []proto.Message
	sent := 0
	switch {
	case r.first != nil:
		got = []proto.Message{r.first}
	case r.mode == ModeBidi && c.Bidi == PingPong:
		for limit < 0 || len(got) < limit {
			m, err := r.recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			got = append(got, m)
			if sent < len(responses) {
				if err := sendAt(sent); err != nil {
					return nil, err
				}
				sent++
			}
		}
	default: // client_stream, bidi half_duplex: until half-close or read_requests
		for limit < 0 || len(got) < limit {
			m, err := r.recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			got = append(got, m)
		}
	}

	// The client compresses its requests (call compression): they must have arrived so.
	if c.Compression != "" && len(got) > 0 {
		if rc := receivedCompression(rpcStatsFrom(r.ctx)); rc != c.Compression {
			d.add("server.compression", c.Compression, rc)
		} else if u := receivedUncompressed(rpcStatsFrom(r.ctx)); u != "" { // each message says for itself
			d.add("server.compression", c.Compression, u)
		}
	}

	// 4. compare the requests (the server finishing early expects only those it read)
	if limit >= 0 && limit < len(expReqs) {
		expReqs = expReqs[:limit]
	}
	if sc.requestsWire != nil { // what this peer's library made of the exact bytes the client sent
		d.wireMessages("server.requests_wire", sc.requestsWire, got)
	} else {
		d.messages("server.requests", expReqs, got)
	}
	if c.Protojson && len(got) > 0 { // the client's protojson rendering of its request, parsed here
		d.parsedJSON("server.json.request", md, got[0])
	}

	// 5. headers were set above; responses, trailers, status
	ok := sc.code == codes.OK && spec.End != EndRaise
	var unaryResp proto.Message
	switch r.mode {
	case ModeUnary, ModeClientStream:
		if ok {
			unaryResp = r.newResp()
			if len(responses) > 0 {
				unaryResp = responses[0]
			}
			if r.mode == ModeClientStream && spec.End != EndReturnNone && spec.End != EndAbort {
				if err := r.stream.SendMsg(unaryResp); err != nil {
					return nil, err
				}
			}
		}
	default:
		if !(r.mode == ModeBidi && c.Bidi == PingPong) {
			for i := range responses {
				if err := sendAt(i); err != nil {
					return nil, err
				}
			}
		}
		// ping-pong: the client half-closed early (fewer requests than responses), so the server
		// streams the rest on
		for ; r.mode == ModeBidi && c.Bidi == PingPong && sent < len(responses); sent++ {
			if err := sendAt(sent); err != nil {
				return nil, err
			}
		}
	}
	trailer := serverTrailer(sc.trailer.Copy())
	if c.Protojson && ok && len(responses) > 0 { // this side's rendering of its first response (wire.go)
		trailer.Append(JSONKey, protojsonOf(responses[0]))
	}
	if sc.detailsStatus != nil && !ok {
		// a status of its own, contradicting the call's: grpc-go would build a matching one
		b, err := proto.Marshal(sc.detailsStatus)
		if err != nil {
			return nil, defect("server.details_status: %v", err)
		}
		trailer.Append("grpc-status-details-bin", string(b))
	}
	r.setTrailer(sc.findings(r.ctx, d, trailer, len(got)))
	switch spec.End {
	case EndReturnNone:
		return nil, nil
	case EndRaise:
		text := ""
		if len(c.Expect.MessageContains) > 0 {
			text = c.Expect.MessageContains[0]
		}
		return nil, raised{text}
	case EndAbort: // with OK, status.Error is nil: the call ends OK, a unary one with no message set
		msg := ""
		if c.Expect.Message != nil && spec.Status == "" {
			msg = *c.Expect.Message
		}
		return nil, status.Error(sc.code, msg)
	}
	if ok {
		return unaryResp, nil
	}
	// expect.message goes with expect.status; with server.status the message is empty (the
	// client reaches its expected status and message by itself).
	msg := ""
	if c.Expect.Message != nil && spec.Status == "" {
		msg = *c.Expect.Message
	}
	st := status.New(sc.code, msg).Proto()
	if sc.detailsStatus == nil {
		st.Details = sc.details
	}
	return nil, status.FromProto(st).Err()
}
