package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
	"github.com/grpc-interop-harness/go_peer/internal/seeds"
)

// startServer serves every registered service (the seeds) on 127.0.0.1:0.
func startServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := engine.NewServer(io.Discard, nil)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// seedCases covers every seed method and every streaming mode; SIZE and SHA are filled in.
const seedCases = `[
 {"name": "routeguide.RouteGuide/GetFeature/named", "calls": [{"method": "/routeguide.RouteGuide/GetFeature",
   "streaming": "unary", "request_type": "routeguide.Point", "response_type": "routeguide.Feature",
   "requests": [{"latitude": 417676368, "longitude": -744139358}], "timeout_ms": 5000,
   "expect": {"status": "OK", "responses": [{"name": "Old Harbor Lighthouse", "location": {"latitude": 417676368, "longitude": -744139358}}]}}]},
 {"name": "routeguide.RouteGuide/GetFeature/unnamed", "calls": [{"method": "/routeguide.RouteGuide/GetFeature",
   "streaming": "unary", "request_type": "routeguide.Point", "response_type": "routeguide.Feature",
   "requests": [{"latitude": 1, "longitude": 2}], "timeout_ms": 5000,
   "expect": {"responses": [{"location": {"latitude": 1, "longitude": 2}}]}}]},
 {"name": "routeguide.RouteGuide/ListFeatures/one", "calls": [{"method": "/routeguide.RouteGuide/ListFeatures",
   "streaming": "server_stream", "request_type": "routeguide.Rectangle", "response_type": "routeguide.Feature",
   "requests": [{"lo": {"latitude": 417676368, "longitude": -744139358}, "hi": {"latitude": 417676368, "longitude": -744139358}}], "timeout_ms": 5000,
   "expect": {"responses": [{"name": "Old Harbor Lighthouse", "location": {"latitude": 417676368, "longitude": -744139358}}]}}]},
 {"name": "routeguide.RouteGuide/RecordRoute/empty", "calls": [{"method": "/routeguide.RouteGuide/RecordRoute",
   "streaming": "client_stream", "request_type": "routeguide.Point", "response_type": "routeguide.RouteSummary",
   "requests": [], "timeout_ms": 5000, "expect": {"responses": [{}]}}]},
 {"name": "routeguide.RouteGuide/RecordRoute/repeat", "calls": [{"method": "/routeguide.RouteGuide/RecordRoute",
   "streaming": "client_stream", "request_type": "routeguide.Point", "response_type": "routeguide.RouteSummary",
   "requests": [{"latitude": 417676368, "longitude": -744139358}, {"latitude": 417676368, "longitude": -744139358}], "timeout_ms": 5000,
   "expect": {"responses": [{"point_count": 2, "feature_count": 2, "elapsed_time": 1}]}}]},
 {"name": "routeguide.RouteGuide/RouteChat/half_duplex", "calls": [{"method": "/routeguide.RouteGuide/RouteChat",
   "streaming": "bidi", "request_type": "routeguide.RouteNote", "response_type": "routeguide.RouteNote",
   "requests": [{"location": {"latitude": 1}, "message": "1"}, {"location": {"latitude": 2}, "message": "2"}, {"location": {"latitude": 1}, "message": "3"}, {"location": {"latitude": 1}, "message": "4"}],
   "timeout_ms": 5000, "expect": {"responses": [{"location": {"latitude": 1}, "message": "1"}, {"location": {"latitude": 1}, "message": "1"}, {"location": {"latitude": 1}, "message": "3"}]}}]},
 {"name": "tutorial.HelloService/all", "calls": [
   {"method": "/tutorial.HelloService/SayHello", "streaming": "unary", "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse",
    "requests": [{"greeting": "world"}], "timeout_ms": 5000, "expect": {"responses": [{"reply": "hello world"}]}},
   {"method": "/tutorial.HelloService/LotsOfReplies", "streaming": "server_stream", "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse",
    "requests": [{"greeting": " a  b\tc "}], "timeout_ms": 5000, "expect": {"responses": [{"reply": "hello a"}, {"reply": "hello b\tc"}]}},
   {"method": "/tutorial.HelloService/LotsOfGreetings", "streaming": "client_stream", "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse",
    "requests": [{"greeting": "x"}, {}, {"greeting": "y"}], "timeout_ms": 5000, "expect": {"responses": [{"reply": "hello x, , y"}]}},
   {"method": "/tutorial.HelloService/BidiHello", "streaming": "bidi", "bidi": "ping_pong", "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse",
    "requests": [{"greeting": "a"}, {"greeting": "b"}], "timeout_ms": 5000, "expect": {"responses": [{"reply": "hello a"}, {"reply": "hello b"}]}},
   {"method": "/tutorial.HelloService/BidiHello", "streaming": "bidi", "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse",
    "requests": [], "timeout_ms": 5000, "expect": {"responses": []}}]},
 {"name": "users.Users/all", "calls": [
   {"method": "/users.Users/CreateUser", "streaming": "unary", "request_type": "users.CreateUserRequest", "response_type": "users.CreateUserResult",
    "metadata": {"ip": ["127.0.0.1", "10.0.0.1"], "trace-bin": ["AP8B"]},
    "requests": [{"username": "alice", "password": "p"}], "timeout_ms": 5000,
    "expect": {"responses": [{"user": {"username": "alice", "user_id": 663665735}}], "headers": {"echo-ip": ["127.0.0.1", "10.0.0.1"], "echo-trace-bin": ["AP8B"]}}},
   {"method": "/users.Users/CreateUser", "streaming": "unary", "request_type": "users.CreateUserRequest", "response_type": "users.CreateUserResult",
    "requests": [{}], "timeout_ms": 5000, "expect": {"status": "INVALID_ARGUMENT", "message": "username must not be empty"}},
   {"method": "/users.Users/GetUsers", "streaming": "server_stream", "request_type": "users.GetUsersRequest", "response_type": "users.GetUsersResult",
    "requests": [{"user": [{"username": "a", "user_id": 1}, {}]}], "timeout_ms": 5000,
    "expect": {"responses": [{"user": {"username": "a", "user_id": 1}}, {"user": {}}]}}]},
 {"name": "posXYZ.PositionService/session", "calls": [
   {"method": "/posXYZ.PositionService/PositionReq", "streaming": "unary", "request_type": "posXYZ.Msg", "response_type": "posXYZ.Position",
    "requests": [{"msg": "last"}], "timeout_ms": 5000, "expect": {"status": "NOT_FOUND", "message": "no position published in this session"}},
   {"method": "/posXYZ.PositionService/PositionReq", "streaming": "unary", "request_type": "posXYZ.Msg", "response_type": "posXYZ.Position",
    "requests": [{"msg": "where"}], "timeout_ms": 5000, "expect": {"responses": [{"position": {"x": 1}, "msg": "character position"}]}},
   {"method": "/posXYZ.PositionService/PositionPub", "streaming": "unary", "request_type": "posXYZ.Position", "response_type": "posXYZ.Msg",
    "requests": [{"position": {"x": 0.5, "y": -2, "z": 3}, "status": 7, "msg": "m"}], "timeout_ms": 5000, "expect": {"responses": [{"status": 1, "msg": "stored"}]}},
   {"method": "/posXYZ.PositionService/PositionReq", "streaming": "unary", "request_type": "posXYZ.Msg", "response_type": "posXYZ.Position",
    "requests": [{"msg": "last"}], "timeout_ms": 5000, "expect": {"responses": [{"position": {"x": 0.5, "y": -2, "z": 3}, "status": 7, "msg": "m"}]}},
   {"method": "/posXYZ.PositionService/PositionReq", "streaming": "unary", "request_type": "posXYZ.Msg", "response_type": "posXYZ.Position",
    "requests": [{}], "timeout_ms": 5000, "expect": {"responses": [{"position": {"x": 0.9961947, "y": 0.087155744}, "msg": "character position"}]}}]},
 {"name": "idc.Indicator/GetMACD/bad_date", "calls": [{"method": "/idc.Indicator/GetMACD", "streaming": "unary",
   "request_type": "idc.MACDRequest", "response_type": "idc.MACDReply", "requests": [{"start_date": "2024-13-01", "end_date": "2024-01-01"}],
   "timeout_ms": 5000, "expect": {"status": "INVALID_ARGUMENT", "message": "start_date: cannot parse \"2024-13-01\" as YYYY-MM-DD"}}]},
 {"name": "idc.IndicatorGraph/GetMACDGraph/january", "calls": [{"method": "/idc.IndicatorGraph/GetMACDGraph", "streaming": "server_stream",
   "request_type": "idc.MACDGraphRequest", "response_type": "idc.MACDGraphReply", "requests": [{"start_date": "2024-01-01", "end_date": "2024-01-31"}],
   "timeout_ms": 5000, "expect": {"chunks": {"field": "macd_chunk", "size": SIZE, "sha256": "SHA", "chunk_size": 1024}}}]},
 {"name": "wrong/expectation", "calls": [{"method": "/routeguide.RouteGuide/ListFeatures",
   "streaming": "server_stream", "request_type": "routeguide.Rectangle", "response_type": "routeguide.Feature",
   "requests": [{"lo": {"latitude": 417676368, "longitude": -744139358}, "hi": {"latitude": 417676368, "longitude": -744139358}}], "timeout_ms": 5000,
   "expect": {"status": "NOT_FOUND", "responses": [{"name": "Old Harbor", "location": {"latitude": 417676369, "longitude": -744139358}}, {}]}}]},
 {"name": "bad/type", "calls": [{"method": "/x.Y/Z", "streaming": "unary", "request_type": "x.Nope", "response_type": "x.Nope", "requests": [{}], "expect": {"responses": []}}]},
 {"name": "bad/unimplemented", "calls": [{"method": "/routeguide.RouteGuide/Nope", "streaming": "unary", "request_type": "routeguide.Point",
   "response_type": "routeguide.Point", "requests": [{}], "timeout_ms": 5000, "expect": {"status": "UNIMPLEMENTED"}}]}
]`

func TestClientAgainstSeeds(t *testing.T) {
	addr := startServer(t)
	days, err := seeds.TradingDays("2024-01-01", "2024-01-31")
	if err != nil {
		t.Fatal(err)
	}
	img := seeds.BMP(days)
	sum := sha256.Sum256(img)
	cases := strings.NewReplacer("SIZE", itoa(len(img)), "SHA", hex.EncodeToString(sum[:])).Replace(seedCases)
	doc := `{"target": "` + addr + `", "direction": "go→go", "run_id": "t1", "cases": ` + cases + `}`
	var out, errs bytes.Buffer
	if err := engine.RunClient(context.Background(), []byte(doc), &out, &errs); err != nil {
		t.Fatal(err)
	}
	var results []engine.Result
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r engine.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		results = append(results, r)
	}
	if len(results) != 14 {
		t.Fatalf("%d results:\n%s", len(results), out.String())
	}
	for _, r := range results {
		want := engine.Pass
		switch r.Case {
		case "wrong/expectation":
			want = engine.Fail
		case "bad/type":
			want = engine.Error
		}
		if r.Verdict != want || r.Direction != "go→go" {
			t.Errorf("%s: verdict %s, want %s: %+v", r.Case, r.Verdict, want, r.Diffs)
		}
	}
	wrong := results[11].Diffs
	// the count, the first response's fields, then the response that never came, by index
	wantPaths := []string{"status.code", "responses.count", "responses[0].name", "responses[0].location.latitude", "responses[1]"}
	if len(wrong) != len(wantPaths) {
		t.Fatalf("wrong/expectation diffs %+v", wrong)
	}
	for i, p := range wantPaths {
		if wrong[i].Path != p {
			t.Errorf("diff %d path %q, want %q", i, wrong[i].Path, p)
		}
	}
	if wrong[3].Expected != "417676369" || wrong[3].Got != "417676368" {
		t.Errorf("latitude diff %+v", wrong[3])
	}
	if d := results[12].Diffs; len(d) != 1 || d[0].Path != "error" || !strings.Contains(d[0].Got, "x.Nope") {
		t.Errorf("bad/type diffs %+v", d)
	}
}

func TestBadDocument(t *testing.T) {
	var out bytes.Buffer
	if err := engine.RunClient(context.Background(), []byte(`{"target": `), &out, io.Discard); err == nil {
		t.Error("bad JSON must fail the client")
	}
	if err := engine.RunClient(context.Background(), []byte(`{"cases": []}`), &out, io.Discard); err == nil {
		t.Error("missing target must fail the client")
	}
}

func TestHealthAndReflection(t *testing.T) {
	addr := startServer(t)
	conn, err := engine.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "routeguide.RouteGuide", "posXYZ.PositionService", "idc.IndicatorGraph"} {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, r, err)
		}
	}
	var _ grpc.ClientConnInterface = conn
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
