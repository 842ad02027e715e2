package engine_test

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
	"github.com/grpc-interop-harness/go_peer/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Issue 17: faults of a Go server that passed the whole catalogue, each injected with interceptors
// around the real engine. The catalogue's cases must now fail against them (and pass without them).

// faultyServer is genericServer with extra server options (the fault), which run inside the engine's.
func faultyServer(t *testing.T, cases string, opts ...grpc.ServerOption) string {
	t.Helper()
	cat, err := engine.LoadCatalogue([]byte(`{"cases": ` + cases + `}`))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := engine.NewServer(&testutil.SyncBuffer{}, cat, opts...)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// The generated code_17 case: the server sends CODE_17 and confirms it; readers see UNKNOWN.
const code17Case = `[{"name": "m/code_17", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` +
	helloCall + `, "checked_by_server": true, "requests": [{}], "expect": {"status": "UNKNOWN", "responses": []},
  "server": {"status": "CODE_17"}}]}]`

// clampCodes is the fault: a status code past 16 leaves the server as UNKNOWN.
func clampCodes(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if st, ok := status.FromError(err); ok && st.Code() > codes.Unauthenticated {
		return resp, status.Error(codes.Unknown, st.Message())
	}
	return resp, err
}

func TestCodeClampingServerFailsCode17(t *testing.T) {
	// Honest: only the known divergence of grpc-go's client (it keeps the number), confirmed.
	r := runCases(t, dial(t, faultyServer(t, code17Case)), code17Case)["m/code_17"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"status.code"}) || r.Diffs[0].Got != "CODE_17" {
		t.Fatalf("honest server: %+v", r.Diffs)
	}
	// Clamped after the engine: the client's number is not the one the server confirms sending.
	r = runCases(t, dial(t, faultyServer(t, code17Case, grpc.ChainUnaryInterceptor(clampCodes))), code17Case)["m/code_17"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"status.code.number"}) ||
		r.Diffs[0].Expected != "CODE_17 (sent by the server)" || r.Diffs[0].Got != "UNKNOWN" {
		t.Errorf("a server that clamps codes past 16 must fail code_17: %+v", r.Diffs)
	}
}

// A server whose engine clamps the code confirms what it sent: UNKNOWN, not the case's CODE_17,
// which every client (grpcio's read UNKNOWN either way) reports.
func TestServerConfirmationOfAnotherCodeFails(t *testing.T) {
	var c engine.Call
	c.Method, c.Streaming, c.RequestType, c.ResponseType = "/tutorial.HelloService/SayHello", "unary", "tutorial.HelloRequest", "tutorial.HelloResponse"
	c.Requests = []json.RawMessage{json.RawMessage(`{}`)}
	c.Expect.Status, c.Server, c.CheckedByServer = "UNKNOWN", &engine.ServerSpec{Status: "CODE_17"}, true
	p, err := engine.Prepare(&c)
	if err != nil {
		t.Fatal(err)
	}
	confirm := func(sent string) metadata.MD {
		return metadata.Pairs(engine.ServerCheckedKey, "1", engine.ServerStatusKey, sent)
	}
	for _, tc := range []struct {
		code    codes.Code
		trailer metadata.MD
		want    []string
	}{
		{17, confirm("CODE_17"), []string{"status.code"}},                   // the honest server: grpc-go's known divergence
		{codes.Unknown, confirm("CODE_17"), []string{"status.code.number"}}, // clamped on the way
		{codes.Unknown, confirm("UNKNOWN"), []string{"server.status"}},
		{codes.Unknown, metadata.Pairs(engine.ServerCheckedKey, "1"), []string{"server.status"}},
		{codes.Unknown, metadata.MD{}, []string{"server.checked"}}, // code_17 must be confirmed now
		{18, confirm("CODE_17"), []string{"status.code", "status.code.number"}},
	} {
		got := engine.Check(0, p, engine.Outcome{Status: status.New(tc.code, ""), Trailer: tc.trailer})
		if !slices.Equal(diffPaths(got), tc.want) {
			t.Errorf("%v with %v: %+v, want %v", tc.code, tc.trailer, got, tc.want)
		}
	}
}

// dropLongTrailers is the fault: trailer values longer than 8 KiB are not sent.
type dropLongTrailers struct{ grpc.ServerTransportStream }

func (s dropLongTrailers) SetTrailer(md metadata.MD) error {
	short := metadata.MD{}
	for k, vs := range md {
		for _, v := range vs {
			if len(v) <= 8*1024 {
				short.Append(k, v)
			}
		}
	}
	return s.ServerTransportStream.SetTrailer(short)
}

func dropTrailers(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(grpc.NewContextWithServerTransportStream(ctx, dropLongTrailers{grpc.ServerTransportStreamFromContext(ctx)}), req)
}

// The generated metadata_trailers_over_hard_limit case: 17 KiB of trailers, which a grpcio client
// refuses and grpc-go's accepts (a known divergence that must show them intact).
var trailersCase = `[{"name": "m/trailers_over", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` +
	helloCall + `, "checked_by_server": true, "requests": [{}], "expect": {"status": "RESOURCE_EXHAUSTED", "responses": []},
  "server": {"status": "OK", "responses": [{"reply": "r"}], "trailers": {"x-large": ["` + strings.Repeat("a", 17*1024) + `"]}}}]}]`

func TestTrailerDroppingServerFailsTrailersOverLimit(t *testing.T) {
	r := runCases(t, dial(t, faultyServer(t, trailersCase)), trailersCase)["m/trailers_over"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"status.code"}) || r.Diffs[0].Got != "OK" {
		t.Fatalf("honest server: only the status may differ (grpc-go's client accepts 17 KiB): %+v", r.Diffs)
	}
	r = runCases(t, dial(t, faultyServer(t, trailersCase, grpc.ChainUnaryInterceptor(dropTrailers))), trailersCase)["m/trailers_over"]
	if !slices.Contains(diffPaths(r.Diffs), `trailers["x-large"]`) {
		t.Errorf("a server that drops long trailers must fail: %+v", r.Diffs)
	}
}

// The generated deadline_exceeded case: the server is to answer OK after 3 s; the client's 100 ms
// deadline must end the call first.
var deadlineCase = `[{"name": "m/stream/deadline_exceeded", "calls": [{"method": "/tutorial.HelloService/SayHello",
  "streaming": "unary", "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse",
  "timeout_ms": 100, "checked_by_server": true, "requests": [{}], "expect": {"status": "DEADLINE_EXCEEDED", "responses": []},
  "server": {"status": "OK", "delay_ms": 3000, "responses": [{"reply": "r"}]}}]}]`

// giveUpAtOnce is the fault: a server that reads the deadline as much shorter and ends the call
// DEADLINE_EXCEEDED at once, before the engine (which would confirm what it sent) sees it.
func giveUpAtOnce(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
	return nil, status.Error(codes.DeadlineExceeded, "")
}

func TestAServerThatEndsTheDeadlineCaseEarlyFails(t *testing.T) {
	r := runCases(t, dial(t, faultyServer(t, deadlineCase)), deadlineCase)["m/stream/deadline_exceeded"]
	if len(r.Diffs) != 0 {
		t.Fatalf("honest server: %+v", r.Diffs)
	}
	r = runCases(t, dial(t, faultyServer(t, deadlineCase, grpc.ChainUnaryInterceptor(giveUpAtOnce))), deadlineCase)["m/stream/deadline_exceeded"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"status.elapsed"}) {
		t.Errorf("a server that ends the call for its deadline before the deadline must fail: %+v", r.Diffs)
	}
}

func TestACallEndsForItsDeadlineNoEarlierThanTheDeadline(t *testing.T) {
	var c engine.Call
	c.Method, c.Streaming, c.RequestType, c.ResponseType = "/tutorial.HelloService/SayHello", "unary", "tutorial.HelloRequest", "tutorial.HelloResponse"
	c.Requests = []json.RawMessage{json.RawMessage(`{}`)}
	timeout := 100.0
	c.TimeoutMS, c.Expect.Status, c.Server = &timeout, "DEADLINE_EXCEEDED", &engine.ServerSpec{Status: "OK"}
	p, err := engine.Prepare(&c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code    codes.Code
		elapsed time.Duration
		want    []string
	}{
		{codes.DeadlineExceeded, 101 * time.Millisecond, nil},
		{codes.DeadlineExceeded, 10 * time.Millisecond, []string{"status.elapsed"}},
		{codes.Canceled, 10 * time.Millisecond, []string{"status.code", "status.elapsed"}},
		{codes.Canceled, 101 * time.Millisecond, []string{"status.code"}}, // grpc-go reports such a reset as DEADLINE_EXCEEDED
		{codes.DeadlineExceeded, 0, nil},                                  // not measured
	} {
		got := engine.Check(0, p, engine.Outcome{Status: status.New(tc.code, ""), Elapsed: tc.elapsed})
		if !slices.Equal(diffPaths(got), tc.want) {
			t.Errorf("%v after %v: %+v, want %v", tc.code, tc.elapsed, got, tc.want)
		}
	}
	// a server told to send DEADLINE_EXCEEDED (status_deadline_exceeded) may send it at once
	c.Server = nil
	if p, err = engine.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	if got := engine.Check(0, p, engine.Outcome{Status: status.New(codes.DeadlineExceeded, ""), Elapsed: time.Millisecond}); len(got) != 0 {
		t.Errorf("status_deadline_exceeded: %+v", got)
	}
}
