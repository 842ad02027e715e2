package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
	"github.com/grpc-interop-harness/go_peer/internal/registry"
	"github.com/grpc-interop-harness/go_peer/internal/testutil"
)

// testServiceGlue is what protoc-gen-interop would generate for grpc.testing.TestService (which
// has no hand-written implementation here): every method goes to the generic engine.
type testServiceGlue struct {
	testpb.UnimplementedTestServiceServer
	fallback testpb.TestServiceServer
}

func init() {
	registry.AddService(testpb.TestService_ServiceDesc.ServiceName, func(s grpc.ServiceRegistrar) {
		fallback, _ := registry.Impl(testpb.TestService_ServiceDesc.ServiceName).(testpb.TestServiceServer)
		testpb.RegisterTestServiceServer(s, &testServiceGlue{fallback: fallback})
	})
}

func (x *testServiceGlue) EmptyCall(ctx context.Context, req *testpb.Empty) (*testpb.Empty, error) {
	return engine.Unary(ctx, testpb.TestService_EmptyCall_FullMethodName, req, x.fallback, testpb.TestServiceServer.EmptyCall)
}

func (x *testServiceGlue) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return engine.Unary(ctx, testpb.TestService_UnaryCall_FullMethodName, req, x.fallback, testpb.TestServiceServer.UnaryCall)
}

func (x *testServiceGlue) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	return engine.ServerStream(stream, testpb.TestService_StreamingOutputCall_FullMethodName, req, x.fallback, testpb.TestServiceServer.StreamingOutputCall)
}

func (x *testServiceGlue) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	return engine.ClientStream(stream, testpb.TestService_StreamingInputCall_FullMethodName, x.fallback, testpb.TestServiceServer.StreamingInputCall)
}

func (x *testServiceGlue) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	return engine.Bidi(stream, testpb.TestService_FullDuplexCall_FullMethodName, x.fallback, testpb.TestServiceServer.FullDuplexCall)
}

// genericServer serves a catalogue (the cases JSON list) on 127.0.0.1:0.
func genericServer(t *testing.T, cases string) (string, *testutil.SyncBuffer) {
	t.Helper()
	cat, err := engine.LoadCatalogue([]byte(`{"cases": ` + cases + `}`))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	s := engine.NewServer(log, cat)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String(), log
}

// runCases runs a cases JSON list against addr and returns the results by case name.
func runCases(t *testing.T, conn grpc.ClientConnInterface, cases string) map[string]engine.Result {
	t.Helper()
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(cases), &raws); err != nil {
		t.Fatal(err)
	}
	in := &engine.Input{Direction: "go-go", RunID: "t"}
	out := map[string]engine.Result{}
	for _, raw := range raws {
		r := engine.RunCase(context.Background(), conn, in, raw)
		out[r.Case] = r
	}
	return out
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	// The engine's stats handler, as engine.Dial installs it: the client sees the compression of
	// what it receives.
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(engine.StatsHandler())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func diffPaths(ds []engine.Diff) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Path
	}
	return out
}

const helloCall = `"request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse", "timeout_ms": 5000`

// The catalogue answers instead of the seed (whose replies are "hello ..."), in every mode.
const genericCases = `[
 {"name": "g/unary", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "metadata": {"x-k": ["v"], "x-b-bin": ["AP8="]}, "requests": [{"greeting": "a"}],
   "expect": {"responses": [{"reply": "from the catalogue"}], "headers": {"h": ["1", "2"], "h-bin": ["AAE="]},
              "trailers": {"t": ["x"]}}}]},
 {"name": "g/server_stream", "calls": [{"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", ` + helloCall + `,
   "requests": [{"greeting": "a b"}], "expect": {"responses": [{"reply": "1"}, {"reply": "2"}, {"reply": "3"}]}}]},
 {"name": "g/client_stream", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "requests": [{"greeting": "a"}, {"greeting": "b"}], "expect": {"responses": [{"reply": "ab"}]}}]},
 {"name": "g/client_stream_empty", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "requests": [], "expect": {"responses": [{}]}}]},
 {"name": "g/half_duplex", "calls": [{"method": "/tutorial.HelloService/BidiHello", "streaming": "bidi", "bidi": "half_duplex", ` + helloCall + `,
   "requests": [{"greeting": "a"}, {"greeting": "b"}, {"greeting": "c"}], "expect": {"responses": [{"reply": "x"}]}}]},
 {"name": "g/ping_pong", "calls": [{"method": "/tutorial.HelloService/BidiHello", "streaming": "bidi", "bidi": "ping_pong", ` + helloCall + `,
   "requests": [{"greeting": "a"}, {"greeting": "b"}], "expect": {"responses": [{"reply": "A"}, {"reply": "B"}]}}]},
 {"name": "g/two_calls", "calls": [
   {"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `, "requests": [{"greeting": "1"}], "expect": {"responses": [{"reply": "first"}]}},
   {"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `, "requests": [{"greeting": "2"}], "expect": {"responses": [{"reply": "second"}]}}]},
 {"name": "g/error", "calls": [{"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", ` + helloCall + `,
   "requests": [{}], "expect": {"status": "RESOURCE_EXHAUSTED", "message": "too many", "responses": [{"reply": "before"}],
   "trailers": {"retry-after": ["5"]},
   "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA", "domain": "d", "metadata": {"k": "v"}},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "1.5s"}]}}]},
 {"name": "g/read_requests", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "server": {"read_requests": 2}, "requests": [{"greeting": "a"}, {"greeting": "b"}, {"greeting": "c"}, {"greeting": "d"}],
   "expect": {"responses": [{"reply": "early"}]}}]},
 {"name": "g/gzip", "calls": [{"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", ` + helloCall + `,
   "compression": "gzip", "server": {"compression": "gzip"}, "requests": [{"greeting": "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}],
   "expect": {"responses": [{"reply": "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}]}}]},
 {"name": "g/deadline", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary",
   "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse", "timeout_ms": 100,
   "server": {"delay_ms": 3000}, "requests": [{}], "expect": {"status": "DEADLINE_EXCEEDED"}}]},
 {"name": "g/cancel", "calls": [{"method": "/tutorial.HelloService/BidiHello", "streaming": "bidi", "bidi": "ping_pong", ` + helloCall + `,
   "cancel_after_responses": 1, "requests": [{"greeting": "a"}, {"greeting": "b"}, {"greeting": "c"}],
   "expect": {"status": "CANCELLED", "responses": [{"reply": "A"}]}}]},
 {"name": "g/cancel_at_once", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "cancel_after_responses": 0, "requests": [{}], "expect": {"status": "CANCELLED"}}]},
 {"name": "g/no_seed", "calls": [
   {"method": "/grpc.testing.TestService/UnaryCall", "streaming": "unary", "request_type": "grpc.testing.SimpleRequest",
    "response_type": "grpc.testing.SimpleResponse", "requests": [{"response_size": 3}], "expect": {"responses": [{"username": "u"}]}},
   {"method": "/grpc.testing.TestService/StreamingOutputCall", "streaming": "server_stream", "request_type": "grpc.testing.StreamingOutputCallRequest",
    "response_type": "grpc.testing.StreamingOutputCallResponse", "requests": [{}], "expect": {"responses": [{}, {"payload": {"body": "AAE="}}]}},
   {"method": "/grpc.testing.TestService/StreamingInputCall", "streaming": "client_stream", "request_type": "grpc.testing.StreamingInputCallRequest",
    "response_type": "grpc.testing.StreamingInputCallResponse", "requests": [{}, {}], "expect": {"responses": [{"aggregated_payload_size": 7}]}},
   {"method": "/grpc.testing.TestService/FullDuplexCall", "streaming": "bidi", "request_type": "grpc.testing.StreamingOutputCallRequest",
    "response_type": "grpc.testing.StreamingOutputCallResponse", "requests": [{}], "expect": {"responses": []}}]}
]`

func TestGenericServerFollowsTheCase(t *testing.T) {
	addr, log := genericServer(t, genericCases)
	conn := dial(t, addr)
	start := time.Now()
	results := runCases(t, conn, genericCases)
	for name, r := range results {
		if r.Verdict != engine.Pass {
			t.Errorf("%s: %s %+v", name, r.Verdict, r.Diffs)
		}
	}
	if len(results) != 14 {
		t.Errorf("%d results", len(results))
	}
	if d := results["g/deadline"].DurationMS; d > 2000 {
		t.Errorf("deadline case took %v ms", d)
	}
	if time.Since(start) > 2500*time.Millisecond {
		t.Errorf("the delayed handler held the test up: %v", time.Since(start))
	}
	if strings.Contains(log.String(), "server:") {
		t.Errorf("unexpected server findings:\n%s", log)
	}
}

func TestGenericServerDiffsTrailer(t *testing.T) {
	addr, log := genericServer(t, genericCases)
	conn := dial(t, addr)
	// The client's version of the cases differs from the server's catalogue.
	clientCases := `[
 {"name": "g/unary", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "metadata": {"x-k": ["w"]}, "requests": [{"greeting": "b"}], "expect": {"responses": [{"reply": "from the catalogue"}]}}]},
 {"name": "g/client_stream", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "requests": [{"greeting": "a"}], "expect": {"responses": [{"reply": "ab"}]}}]}
]`
	results := runCases(t, conn, clientCases)
	r := results["g/unary"]
	want := []string{`server.metadata["x-b-bin"]`, `server.metadata["x-k"]`, "server.requests[0].greeting"}
	if r.Verdict != engine.Fail || !slices.Equal(diffPaths(r.Diffs), want) {
		t.Fatalf("g/unary: %s %+v, want paths %v", r.Verdict, r.Diffs, want)
	}
	if d := r.Diffs[2]; d.Expected != `"a"` || d.Got != `"b"` || d.Call != 0 {
		t.Errorf("request diff %+v", d)
	}
	if d := r.Diffs[0]; d.Expected != `["AP8="]` || d.Got != `[]` {
		t.Errorf("bin metadata diff %+v", d)
	}
	r = results["g/client_stream"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"server.requests.count", "server.requests[1]"}) ||
		r.Diffs[0].Expected != "2" || r.Diffs[0].Got != "1" || r.Diffs[1].Expected != `{greeting: "b"}` || r.Diffs[1].Got != "<missing>" {
		t.Errorf("g/client_stream: %+v", r.Diffs)
	}
	if !strings.Contains(log.String(), `[g/unary] server: server.requests[0].greeting: expected "a", got "b"`) {
		t.Errorf("server log:\n%s", log)
	}
}

func TestGenericDetailsAndTrailersMismatch(t *testing.T) {
	addr, _ := genericServer(t, genericCases)
	conn := dial(t, addr)
	clientCases := `[
 {"name": "g/error", "calls": [{"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", ` + helloCall + `,
   "requests": [{}], "expect": {"status": "RESOURCE_EXHAUSTED", "message": "too many", "responses": [{"reply": "before"}],
   "trailers": {"retry-after": ["6"], "interop-anything": ["ignored"]},
   "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "OTHER", "domain": "d", "metadata": {"k": "v"}},
               {"@type": "type.googleapis.com/google.rpc.DebugInfo"}]}}]}
]`
	r := runCases(t, conn, clientCases)["g/error"]
	want := []string{`trailers["retry-after"]`, "details[0].reason", "details[1].@type"}
	if !slices.Equal(diffPaths(r.Diffs), want) {
		t.Fatalf("paths %v, want %v (%+v)", diffPaths(r.Diffs), want, r.Diffs)
	}
	if r.Diffs[1].Expected != `"OTHER"` || r.Diffs[1].Got != `"QUOTA"` {
		t.Errorf("detail diff %+v", r.Diffs[1])
	}
}

// compressionSeen records the compression of every header a client sends and receives.
type compressionSeen struct {
	mu      sync.Mutex
	in, out []string
}

func (c *compressionSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (c *compressionSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *compressionSeen) HandleConn(context.Context, stats.ConnStats) {}
func (c *compressionSeen) HandleRPC(_ context.Context, s stats.RPCStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch h := s.(type) {
	case *stats.InHeader:
		c.in = append(c.in, h.Compression)
	case *stats.OutHeader:
		c.out = append(c.out, h.Compression)
	}
}

func TestGenericCompression(t *testing.T) {
	addr, _ := genericServer(t, genericCases)
	seen := &compressionSeen{}
	conn := dial(t, addr, grpc.WithStatsHandler(seen))
	var gz string
	for _, c := range []string{genericCases} {
		var all []json.RawMessage
		_ = json.Unmarshal([]byte(c), &all)
		for _, raw := range all {
			if strings.Contains(string(raw), `"g/gzip"`) {
				gz = "[" + string(raw) + "]"
			}
		}
	}
	if r := runCases(t, conn, gz)["g/gzip"]; r.Verdict != engine.Pass {
		t.Fatalf("%+v", r)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if !slices.Equal(seen.in, []string{"gzip"}) || !slices.Equal(seen.out, []string{"gzip"}) {
		t.Errorf("compression received %q, sent %q; want gzip both ways", seen.in, seen.out)
	}
}

func TestDispatch(t *testing.T) {
	addr, _ := genericServer(t, genericCases)
	conn := dial(t, addr)
	call := func(name, index string, method string) error {
		md := metadata.Pairs(engine.CaseKey, name)
		if index != "" {
			md.Append(engine.CallKey, index)
		}
		ctx := metadata.NewOutgoingContext(context.Background(), md)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		switch method {
		case "hello":
			_, err = grpcHello(ctx, conn)
		default:
			_, err = testpb.NewTestServiceClient(conn).EmptyCall(ctx, &testpb.Empty{})
		}
		return err
	}
	for _, c := range []struct {
		name, index, method string
		code                codes.Code
		msg                 string
	}{
		{"not/there", "", "hello", codes.OK, ""}, // the seed answers
		{"not/there", "0", "empty", codes.Unimplemented, `no case "not/there" in the catalogue and no implementation of grpc.testing.TestService`},
		{"g/unary", "0", "empty", codes.FailedPrecondition, "case g/unary call 0 is for /tutorial.HelloService/SayHello, not /grpc.testing.TestService/EmptyCall"},
		{"g/unary", "1", "hello", codes.FailedPrecondition, "case g/unary has no call 1"},
		{"g/two_calls", "1", "hello", codes.OK, ""},
		{"g%2Funary", "", "hello", codes.OK, ""}, // percent-encoded by the client
	} {
		err := call(c.name, c.index, c.method)
		st := status.Convert(err)
		if st.Code() != c.code || (c.msg != "" && st.Message() != c.msg) {
			t.Errorf("%s call %s (%s): %v %q, want %v %q", c.name, c.index, c.method, st.Code(), st.Message(), c.code, c.msg)
		}
	}
}

func grpcHello(ctx context.Context, conn *grpc.ClientConn) (any, error) {
	// Sent with a generic stream so this test does not depend on the seed package.
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{}, "/tutorial.HelloService/SayHello")
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(&testpb.Empty{}); err != nil {
		return nil, err
	}
	_ = stream.CloseSend()
	out := &testpb.Empty{}
	return out, stream.RecvMsg(out)
}

func TestStrictCasesAndRaw(t *testing.T) {
	addr, _ := genericServer(t, `[]`)
	conn := dial(t, addr)
	cases := `[
 {"name": "typo", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "expect": {"responsess": []}}]},
 {"name": "typo2", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "server": {"delay": 1}}]},
 {"name": "raw", "calls": [{"method": "/no.Such/Method", "streaming": "unary", "raw": true, "timeout_ms": 5000,
   "requests": [{}], "expect": {"status": "UNIMPLEMENTED", "message": "unknown service no.Such"}}]},
 {"name": "raw_method", "calls": [{"method": "/tutorial.HelloService/Nope", "streaming": "unary", "raw": true, "timeout_ms": 5000,
   "requests": [{}], "expect": {"status": "UNIMPLEMENTED"}}]},
 {"name": "bad_detail", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "expect": {"details": [{"@type": "type.googleapis.com/no.Such"}]}}]}
]`
	results := runCases(t, conn, cases)
	for _, name := range []string{"typo", "typo2", "bad_detail"} {
		if r := results[name]; r.Verdict != engine.Error {
			t.Errorf("%s: %+v, want an error verdict", name, r)
		}
	}
	for _, name := range []string{"raw", "raw_method"} {
		if r := results[name]; r.Verdict != engine.Pass {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

func TestCatalogueErrors(t *testing.T) {
	if _, err := engine.LoadCatalogue([]byte(`{"cases": [{"name": "a", "calls": []}, {"name": "a", "calls": []}]}`)); err == nil {
		t.Error("duplicate case names must fail")
	}
	if _, err := engine.LoadCatalogue([]byte(`{`)); err == nil {
		t.Error("bad JSON must fail")
	}
	// A bad case is kept and reported to its calls.
	addr, _ := genericServer(t, `[{"name": "bad", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", "nope": 1}]}]`)
	conn := dial(t, addr)
	ctx := metadata.AppendToOutgoingContext(context.Background(), engine.CaseKey, "bad")
	_, err := grpcHello(ctx, conn)
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "nope") {
		t.Errorf("bad case: %v", err)
	}
}

// The whole client program against a generic server, as the harness runs it.
func TestRunClientGeneric(t *testing.T) {
	addr, _ := genericServer(t, genericCases)
	doc := `{"target": "` + addr + `", "direction": "go-go", "run_id": "r", "cases": ` + genericCases + `}`
	var out, errs bytes.Buffer
	if err := engine.RunClient(context.Background(), []byte(doc), &out, &errs); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		var r engine.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Verdict != engine.Pass {
			t.Errorf("%s (%v)", sc.Text(), err)
		}
		n++
	}
	if n != 14 {
		t.Errorf("%d results", n)
	}
}
