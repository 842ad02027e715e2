package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/grpc-interop-harness/go_peer/gen/pb/idc"
	legacy "github.com/grpc-interop-harness/go_peer/gen/pb/shapes/shapes_legacy"
	"github.com/grpc-interop-harness/go_peer/internal/engine"
)

// Extensions are compared like fields: presence, values, lists, nested messages.
func TestDiffExtensions(t *testing.T) {
	mk := func(note string, marks []int32, level *legacy.Level) *legacy.Legacy {
		m := &legacy.Legacy{Id: proto.String("x")}
		if note != "" {
			proto.SetExtension(m, legacy.E_Note, note)
		}
		if marks != nil {
			proto.SetExtension(m, legacy.E_Marks, marks)
		}
		if level != nil {
			proto.SetExtension(m, legacy.E_ExtLevel, *level)
		}
		return m
	}
	high := legacy.Level_LEVEL_HIGH
	exp := mk("a", []int32{1, 2}, &high)
	got := mk("b", []int32{1, 3, 4}, nil)
	d := engine.NewDiffer(nil)
	d.Messages("responses", []proto.Message{exp}, []proto.Message{got})
	want := []string{ // by field number: note 100, marks 101, ext_level 102
		"responses[0].[shapes.legacy.note]",
		"responses[0].[shapes.legacy.marks].count",
		"responses[0].[shapes.legacy.marks][1]",
		"responses[0].[shapes.legacy.ext_level]",
	}
	if !slices.Equal(paths(d.Diffs()), want) {
		t.Fatalf("paths %v, want %v (%+v)", paths(d.Diffs()), want, d.Diffs())
	}
	if x := d.Diffs()[3]; x.Expected != "LEVEL_HIGH" || x.Got != "<unset>" {
		t.Errorf("presence diff %+v", x)
	}
	if x := d.Diffs()[0]; x.Expected != `"a"` || x.Got != `"b"` {
		t.Errorf("value diff %+v", x)
	}
	// An extension only the received message carries is a diff too; equal extensions are not.
	d = engine.NewDiffer(nil)
	d.Messages("responses", []proto.Message{mk("a", nil, nil)}, []proto.Message{mk("a", nil, &high)})
	if !slices.Equal(paths(d.Diffs()), []string{"responses[0].[shapes.legacy.ext_level]"}) {
		t.Errorf("extra extension: %+v", d.Diffs())
	}
	// Nested: an extension of the child message.
	d = engine.NewDiffer(nil)
	pe, pg := mk("", nil, nil), mk("", nil, nil)
	pe.Child, pg.Child = mk("n", nil, nil), mk("m", nil, nil)
	d.Messages("responses", []proto.Message{pe}, []proto.Message{pg})
	if !slices.Equal(paths(d.Diffs()), []string{"responses[0].child.[shapes.legacy.note]"}) {
		t.Errorf("nested extension: %+v", d.Diffs())
	}
}

func oneCase(t *testing.T, cases, name string) string {
	t.Helper()
	var all []json.RawMessage
	if err := json.Unmarshal([]byte(cases), &all); err != nil {
		t.Fatal(err)
	}
	for _, raw := range all {
		var c struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &c)
		if c.Name == name {
			return "[" + string(raw) + "]"
		}
	}
	t.Fatalf("no case %s", name)
	return ""
}

const zs = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"

// gzip both ways: the server checks the requests arrived compressed, the client the responses.
func TestGzipVerified(t *testing.T) {
	served := `[
 {"name": "gz/requests", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "compression": "gzip", "requests": [{"greeting": "` + zs + `"}], "expect": {"responses": [{"reply": "` + zs + `"}]}}]},
 {"name": "gz/responses", "calls": [{"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", ` + helloCall + `,
   "requests": [{"greeting": "a"}], "expect": {"responses": [{"reply": "` + zs + `"}, {"reply": "` + zs + `"}]}}]}
]`
	addr, log := genericServer(t, served)
	conn := dial(t, addr)
	// The client does not compress its requests although the case says so (the server must see
	// it), and expects compressed responses the server does not send (the client must see it).
	client := strings.Replace(served, `"compression": "gzip", `, ``, 1)
	client = strings.Replace(client, `"streaming": "server_stream", `, `"streaming": "server_stream", "server": {"compression": "gzip"}, `, 1)
	results := runCases(t, conn, client)
	r := results["gz/requests"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"server.compression"}) || r.Diffs[0].Expected != "gzip" || r.Diffs[0].Got != "identity" {
		t.Errorf("gz/requests: %+v", r.Diffs)
	}
	if !strings.Contains(log.String(), "[gz/requests] server: server.compression: expected gzip, got identity") {
		t.Errorf("server log:\n%s", log)
	}
	r = results["gz/responses"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"compression"}) || r.Diffs[0].Expected != "gzip" || r.Diffs[0].Got != "identity" {
		t.Errorf("gz/responses: %+v", r.Diffs)
	}
	// Both sides compress as the case says: no diff.
	both := strings.Replace(served, `"streaming": "server_stream", `, `"streaming": "server_stream", "server": {"compression": "gzip"}, `, 1)
	addr, _ = genericServer(t, both)
	for name, r := range runCases(t, dial(t, addr), both) {
		if r.Verdict != engine.Pass {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

// The generic server always sends interop-server-checked; the client requires it when the
// case is in the server's catalogue and the server answers the call itself.
func TestServerCheckedTrailer(t *testing.T) {
	served := `[
 {"name": "ck/ok", "calls": [{"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", ` + helloCall + `,
   "checked_by_server": true, "requests": [{"greeting": "a"}, {"greeting": "b"}], "expect": {"responses": [{"reply": "r"}]}}]},
 {"name": "ck/error", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "checked_by_server": true, "requests": [{"greeting": "a"}], "expect": {"status": "NOT_FOUND", "message": "no"}}]}
]`
	addr, _ := genericServer(t, served)
	conn := dial(t, addr)
	for name, want := range map[string]codes.Code{"ck/ok": codes.OK, "ck/error": codes.NotFound} {
		md := metadata.Pairs(engine.CaseKey, name)
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 5*time.Second)
		var trailer metadata.MD
		var err error
		if name == "ck/ok" {
			stream, e := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/tutorial.HelloService/LotsOfGreetings")
			if e != nil {
				t.Fatal(e)
			}
			_ = stream.SendMsg(&emptypb.Empty{}) // an empty HelloRequest on the wire
			_ = stream.SendMsg(&emptypb.Empty{})
			_ = stream.CloseSend()
			err = stream.RecvMsg(&emptypb.Empty{})
			trailer = stream.Trailer()
		} else {
			err = conn.Invoke(ctx, "/tutorial.HelloService/SayHello", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Trailer(&trailer))
		}
		cancel()
		if status.Code(err) != want {
			t.Errorf("%s: %v", name, err)
		}
		wantN := map[string]string{"ck/ok": "2", "ck/error": "1"}[name]
		if got := trailer.Get(engine.ServerCheckedKey); !slices.Equal(got, []string{wantN}) {
			t.Errorf("%s: %s = %q, want %s", name, engine.ServerCheckedKey, got, wantN)
		}
	}
	for name, r := range runCases(t, conn, served) {
		if r.Verdict != engine.Pass {
			t.Errorf("%s: %+v", name, r)
		}
	}

	// A server that answers without checking (the seed: the case is not in its catalogue).
	addr, _ = genericServer(t, `[]`)
	conn = dial(t, addr)
	seedCall := `"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `, "requests": [{"greeting": "a"}]`
	cases := `[
 {"name": "ck/missing", "calls": [{` + seedCall + `, "checked_by_server": true, "expect": {"responses": [{"reply": "hello a"}]}}]},
 {"name": "ck/not_asked", "calls": [{` + seedCall + `, "expect": {"responses": [{"reply": "hello a"}]}}]},
 {"name": "ck/client_status", "calls": [{` + seedCall + `, "checked_by_server": true, "expect": {"status": "OK", "status_alternatives": []}, "cancel_after_responses": 0}]},
 {"name": "ck/unimplemented", "calls": [{"method": "/tutorial.HelloService/Nope", "streaming": "unary", "raw": true, "timeout_ms": 5000,
   "requests": [{}], "checked_by_server": true, "expect": {"status": "UNIMPLEMENTED"}}]},
 {"name": "ck/unimplemented2", "calls": [{"method": "/tutorial.HelloService/Nope", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "checked_by_server": true, "expect": {"status": "UNIMPLEMENTED"}}]}
]`
	results := runCases(t, conn, cases)
	r := results["ck/missing"]
	if !slices.Equal(diffPaths(r.Diffs), []string{"server.checked"}) || r.Diffs[0].Expected != "present" || r.Diffs[0].Got != "missing" {
		t.Errorf("ck/missing: %+v", r)
	}
	if r := results["ck/not_asked"]; r.Verdict != engine.Pass {
		t.Errorf("ck/not_asked: %+v", r)
	}
	// cancel_after_responses: the client's own status; not required (the status diff remains).
	if r := results["ck/client_status"]; slices.Contains(diffPaths(r.Diffs), "server.checked") {
		t.Errorf("ck/client_status: %+v", r)
	}
	if r := results["ck/unimplemented"]; r.Verdict != engine.Pass {
		t.Errorf("ck/unimplemented: %+v", r)
	}
	// Not raw: the case says a generic server answers UNIMPLEMENTED, so its confirmation must come
	// back; a status code alone never excuses a missing server check.
	if r := results["ck/unimplemented2"]; !slices.Equal(diffPaths(r.Diffs), []string{"server.checked"}) {
		t.Errorf("ck/unimplemented2: %+v", r)
	}
}

// fakeConn answers every stream with `n` responses, whether or not the call was cancelled (as
// grpc may hand out messages it buffered before the cancel), then CANCELLED.
type fakeConn struct{ n int }

func (f fakeConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unimplemented, "fake")
}

func (f fakeConn) NewStream(ctx context.Context, _ *grpc.StreamDesc, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return &fakeStream{ctx: ctx, left: f.n}, nil
}

type fakeStream struct {
	ctx  context.Context
	left int
}

func (s *fakeStream) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (s *fakeStream) Trailer() metadata.MD         { return metadata.MD{} }
func (s *fakeStream) CloseSend() error             { return nil }
func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SendMsg(any) error            { return nil }
func (s *fakeStream) RecvMsg(any) error {
	if s.left > 0 {
		s.left--
		return nil
	}
	if s.ctx.Err() != nil {
		return status.Error(codes.Canceled, "context canceled")
	}
	return io.EOF
}

func TestCancelStopsCollecting(t *testing.T) {
	in := &engine.Input{Direction: "go-go", RunID: "t"}
	for _, c := range []struct {
		k    string
		want string
	}{{"1", `[{}]`}, {"0", `[]`}, {"2", `[{}, {}]`}} {
		raw := `{"name": "cancel", "calls": [{"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", ` + helloCall + `,
		  "cancel_after_responses": ` + c.k + `, "requests": [{}], "expect": {"status": "CANCELLED", "responses": ` + c.want + `}}]}`
		r := engine.RunCase(context.Background(), fakeConn{n: 5}, in, json.RawMessage(raw))
		if r.Verdict != engine.Pass {
			t.Errorf("cancel after %s: %+v", c.k, r)
		}
	}
}

// server.status: the server finishes with that status and an empty message (expect.message is
// what the client reaches by itself).
func TestServerStatusEmptyMessage(t *testing.T) {
	addr, _ := genericServer(t, `[
 {"name": "st", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", `+helloCall+`,
   "requests": [{}], "server": {"status": "ABORTED"}, "expect": {"status": "CANCELLED", "message": "client side"}}]}]`)
	conn := dial(t, addr)
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), engine.CaseKey, "st"), 5*time.Second)
	defer cancel()
	err := conn.Invoke(ctx, "/tutorial.HelloService/SayHello", &emptypb.Empty{}, &emptypb.Empty{})
	if st := status.Convert(err); st.Code() != codes.Aborted || st.Message() != "" {
		t.Errorf("got %v %q, want ABORTED with an empty message", st.Code(), st.Message())
	}
}

// chunks.chunk_size is optional: absent (or 0) means the chunk sizes are not checked.
func TestChunkSizeOptional(t *testing.T) {
	for _, cs := range []string{``, `, "chunk_size": 0`} {
		raw := `{"method": "/idc.IndicatorGraph/GetMACDGraph", "streaming": "server_stream",
		  "request_type": "idc.MACDGraphRequest", "response_type": "idc.MACDGraphReply",
		  "requests": [{}], "expect": {"chunks": {"field": "macd_chunk", "size": 6, "sha256": "BEF57EC7F53A6D40BEB640A780A639C83BC29AC8A9816F1FC6C5C6DCD93C4721"` + cs + `}}}`
		var c engine.Call
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		p, err := engine.Prepare(&c)
		if err != nil {
			t.Fatalf("chunk_size %q: %v", cs, err)
		}
		out := engine.Outcome{Status: status.New(codes.OK, ""), Responses: []proto.Message{
			&idc.MACDGraphReply{MacdChunk: []byte("ab")}, &idc.MACDGraphReply{MacdChunk: []byte("cde")},
			&idc.MACDGraphReply{MacdChunk: []byte("f")}}}
		if ds := engine.Check(0, p, out); len(ds) != 0 {
			t.Errorf("chunk_size %q: %+v", cs, ds)
		}
	}
	var c engine.Call
	_ = json.Unmarshal([]byte(`{"method": "/idc.IndicatorGraph/GetMACDGraph", "streaming": "server_stream",
	  "request_type": "idc.MACDGraphRequest", "response_type": "idc.MACDGraphReply", "requests": [{}],
	  "expect": {"chunks": {"field": "macd_chunk", "size": 6, "sha256": "00", "chunk_size": -1}}}`), &c)
	if _, err := engine.Prepare(&c); err == nil {
		t.Error("a negative chunk_size must be refused")
	}
}

// The client and the generic server validate a call with the same (strict) rules.
func TestOneValidation(t *testing.T) {
	base := `"method": "/tutorial.HelloService/SayHello", ` + helloCall
	for _, bad := range []string{
		`{` + base + `, "streaming": "unary", "bidi": "ping_pong", "requests": [{}]}`,
		`{` + base + `, "streaming": "unary", "requests": [{}, {}]}`,
		`{` + base + `, "streaming": "unary", "requests": []}`,
		`{` + base + `, "streaming": "server_stream", "requests": []}`,
		`{` + base + `, "streaming": "client_stream", "bidi": "half_duplex", "requests": []}`,
		`{` + base + `, "streaming": "bidi", "bidi": "sideways", "requests": []}`,
		`{` + base + `, "streaming": "unary", "requests": [{}], "server": {"status": "NOPE"}}`,
		`{` + base + `, "streaming": "unary", "requests": [{}], "timeout_ms": 0}`,
		`{` + base + `, "streaming": "unary", "requests": [{}], "compression": "br"}`,
		`{` + base + `, "streaming": "unary", "requests": [{}], "expect": {"headers": {"h-bin": ["%%"]}}}`,
		`{"method": "SayHello", "streaming": "unary", ` + helloCall + `, "requests": [{}]}`,
	} {
		var c engine.Call
		if err := json.Unmarshal([]byte(bad), &c); err != nil {
			t.Fatal(err)
		}
		if _, err := engine.Prepare(&c); err == nil {
			t.Errorf("client accepts %s", bad)
		}
		if err := engine.ServedCallError(&c); err == nil {
			t.Errorf("server accepts %s", bad)
		}
	}
	// Over the wire: a catalogue case with bidi on a unary call is a harness bug.
	addr, _ := genericServer(t, `[{"name": "b", "calls": [{`+base+`, "streaming": "unary", "bidi": "ping_pong", "requests": [{}]}]}]`)
	ctx := metadata.AppendToOutgoingContext(context.Background(), engine.CaseKey, "b")
	_, err := grpcHello(ctx, dial(t, addr))
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "bidi") {
		t.Errorf("bidi on a unary call: %v", err)
	}
}
