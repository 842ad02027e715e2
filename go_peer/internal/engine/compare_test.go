package engine_test

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/grpc-interop-harness/go_peer/gen/pb/idc"
	"github.com/grpc-interop-harness/go_peer/gen/pb/routeguide"
	"github.com/grpc-interop-harness/go_peer/internal/engine"
)

func paths(ds []engine.Diff) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Path
	}
	return out
}

func feature(name string, lat, lon int32) *routeguide.Feature {
	return &routeguide.Feature{Name: name, Location: &routeguide.Point{Latitude: lat, Longitude: lon}}
}

func TestDiffNested(t *testing.T) {
	d := engine.NewDiffer(nil)
	exp := []proto.Message{feature("a", 1, 2), feature("b", 3, 4), feature("c", 409146138, 6)}
	got := []proto.Message{feature("a", 1, 2), feature("x", 3, 5), feature("c", 0, 6)}
	d.Messages("responses", exp, got)
	want := []string{"responses[1].name", "responses[1].location.longitude", "responses[2].location.latitude"}
	if !slices.Equal(paths(d.Diffs()), want) {
		t.Fatalf("paths %v, want %v", paths(d.Diffs()), want)
	}
	if d.Diffs()[0].Expected != `"b"` || d.Diffs()[0].Got != `"x"` {
		t.Errorf("string rendering %+v", d.Diffs()[0])
	}
	if d.Diffs()[2].Expected != "409146138" || d.Diffs()[2].Got != "0" {
		t.Errorf("int rendering %+v", d.Diffs()[2])
	}
}

func TestDiffCountAndPresence(t *testing.T) {
	d := engine.NewDiffer(nil)
	d.Messages("responses", []proto.Message{feature("a", 1, 2), feature("b", 1, 2)},
		[]proto.Message{&routeguide.Feature{Name: "a"}})
	want := []string{"responses.count", "responses[0].location", "responses[1]"}
	if !slices.Equal(paths(d.Diffs()), want) {
		t.Fatalf("paths %v, want %v", paths(d.Diffs()), want)
	}
	if m := d.Diffs()[2]; m.Expected != `{name: "b", location: {…}}` || m.Got != "<missing>" {
		t.Errorf("the missing response is named by its index and a short rendering: %+v", m)
	}
	if d.Diffs()[0].Expected != "2" || d.Diffs()[0].Got != "1" {
		t.Errorf("count %+v", d.Diffs()[0])
	}
	if d.Diffs()[1].Got != "<unset>" || d.Diffs()[1].Expected != "<set>" {
		t.Errorf("presence %+v", d.Diffs()[1])
	}
}

func TestDiffRepeatedFloats(t *testing.T) {
	nan := float32(math.NaN())
	exp := &idc.MACDReply{Macd: []*idc.MACDData{{Date: "d", Open: 1.5, Macd: nan}, {Close: 100}}}
	got := &idc.MACDReply{Macd: []*idc.MACDData{{Date: "d", Open: 1.5, Macd: nan}, {Close: 100.001}}}
	d := engine.NewDiffer(nil)
	d.Messages("responses", []proto.Message{exp}, []proto.Message{got})
	if !slices.Equal(paths(d.Diffs()), []string{"responses[0].macd[1].close"}) {
		t.Fatalf("paths %v", paths(d.Diffs()))
	}
	if d.Diffs()[0].Expected != "100.0" || d.Diffs()[0].Got != "100.001" {
		t.Errorf("float rendering %+v", d.Diffs()[0])
	}
	d = engine.NewDiffer(&engine.Tolerance{Rel: 1e-4})
	d.Messages("responses", []proto.Message{exp}, []proto.Message{got})
	if len(d.Diffs()) != 0 {
		t.Errorf("rel tolerance: %v", d.Diffs())
	}
	d = engine.NewDiffer(&engine.Tolerance{Abs: 1e-4})
	d.Messages("responses", []proto.Message{exp}, []proto.Message{got})
	if len(d.Diffs()) != 1 {
		t.Errorf("abs tolerance too small must still differ: %v", d.Diffs())
	}
	got.Macd = got.Macd[:1]
	d = engine.NewDiffer(nil)
	d.Messages("responses", []proto.Message{exp}, []proto.Message{got})
	if !slices.Equal(paths(d.Diffs()), []string{"responses[0].macd.count"}) {
		t.Errorf("repeated count: %v", paths(d.Diffs()))
	}
}

func TestDiffMapsAndUnknown(t *testing.T) {
	var exp, got structpb.Struct
	_ = protojson.Unmarshal([]byte(`{"a": 1, "b": "x", "n": {"k": [1, 2]}}`), &exp)
	_ = protojson.Unmarshal([]byte(`{"a": 1, "c": true, "n": {"k": [1, 3]}}`), &got)
	d := engine.NewDiffer(nil)
	d.Message("r", exp.ProtoReflect(), got.ProtoReflect())
	want := []string{`r.fields["b"]`, `r.fields["c"]`,
		`r.fields["n"].struct_value.fields["k"].list_value.values[1].number_value`}
	if !slices.Equal(paths(d.Diffs()), want) {
		t.Fatalf("paths %v, want %v", paths(d.Diffs()), want)
	}
	if d.Diffs()[0].Got != "<missing>" || d.Diffs()[1].Expected != "<missing>" {
		t.Errorf("missing keys %+v", d.Diffs()[:2])
	}
	// The struct_value/list_value are oneof members: presence is compared.
	p := &routeguide.Point{Latitude: 1}
	q := &routeguide.Point{Latitude: 1}
	q.ProtoReflect().SetUnknown([]byte{0x18, 0x05}) // field 3, varint 5
	d = engine.NewDiffer(nil)
	d.Message("r", p.ProtoReflect(), q.ProtoReflect())
	if !slices.Equal(paths(d.Diffs()), []string{"r.<unknown fields>"}) || d.Diffs()[0].Got != "[3:varint:5]" {
		t.Errorf("unknown fields %+v", d.Diffs())
	}
}

func TestReprFloat(t *testing.T) {
	for _, c := range []struct {
		f    float64
		bits int
		want string
	}{
		{1, 64, "1.0"}, {0.1, 64, "0.1"}, {1e-5, 64, "1e-05"}, {1.5e16, 64, "1.5e+16"},
		{1e15, 64, "1000000000000000.0"}, {0.0001, 64, "0.0001"}, {math.NaN(), 64, "nan"},
		{math.Inf(-1), 64, "-inf"}, {float64(float32(0.1)), 32, "0.1"}, {-0.0, 64, "0.0"},
		{float64(float32(math.Cos(5 * math.Pi / 180))), 32, "0.9961947"},
	} {
		if got := engine.ReprFloat(c.f, c.bits); got != c.want {
			t.Errorf("engine.ReprFloat(%v, %d) = %q, want %q", c.f, c.bits, got, c.want)
		}
	}
}

func TestCheckHeadersStatusChunks(t *testing.T) {
	raw := `{"method": "/idc.IndicatorGraph/GetMACDGraph", "streaming": "server_stream",
	  "request_type": "idc.MACDGraphRequest", "response_type": "idc.MACDGraphReply",
	  "requests": [{}], "expect": {"status": "NOT_FOUND", "message": "m",
	  "headers": {"echo-ip": ["1", "2"], "echo-x-bin": ["AP8="]},
	  "chunks": {"field": "macd_chunk", "size": 5, "sha256": "00", "chunk_size": 2}}}`
	var c engine.Call
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	p, err := engine.Prepare(&c)
	if err != nil {
		t.Fatal(err)
	}
	out := engine.Outcome{
		Status: status.New(5, "m"),
		Header: metadata.MD{"echo-ip": {"1", "2"}, "echo-x-bin": {"\x00\xff"}},
		Responses: []proto.Message{&idc.MACDGraphReply{MacdChunk: []byte("ab")},
			&idc.MACDGraphReply{MacdChunk: []byte("cde")}, &idc.MACDGraphReply{MacdChunk: []byte("f")}},
	}
	ds := engine.Check(0, p, out)
	want := []string{"chunks[1].size", "chunks.size", "chunks.sha256"}
	if !slices.Equal(paths(ds), want) {
		t.Fatalf("paths %v, want %v", paths(ds), want)
	}
	out.Status = status.New(3, "other")
	out.Header = metadata.MD{"echo-ip": {"2", "1"}}
	ds = engine.Check(0, p, out)
	want = []string{"status.code", "status.message", `headers["echo-ip"]`, `headers["echo-x-bin"]`}
	if got := paths(ds)[:4]; !slices.Equal(got, want) {
		t.Fatalf("paths %v, want %v", got, want)
	}
	if ds[0].Expected != "NOT_FOUND" || ds[0].Got != `INVALID_ARGUMENT "other"` || ds[2].Got != `["2", "1"]` {
		t.Errorf("diffs %+v", ds)
	}
}

func TestPrepareErrors(t *testing.T) {
	for _, raw := range []string{
		`{"method": "/a.B/C", "streaming": "unary", "request_type": "no.Such", "response_type": "routeguide.Point", "requests": [{}]}`,
		`{"method": "/a.B/C", "streaming": "unary", "request_type": "routeguide.Point", "response_type": "routeguide.Point", "requests": [{"nope": 1}]}`,
		`{"method": "/a.B/C", "streaming": "unary", "request_type": "routeguide.Point", "response_type": "routeguide.Point", "requests": []}`,
		`{"method": "/a.B/C", "streaming": "sideways", "request_type": "routeguide.Point", "response_type": "routeguide.Point"}`,
		`{"method": "/a.B/C", "streaming": "client_stream", "request_type": "routeguide.Point", "response_type": "routeguide.Point", "metadata": {"k-bin": ["%%"]}}`,
		`{"method": "/a.B/C", "streaming": "client_stream", "request_type": "routeguide.Point", "response_type": "routeguide.Point", "expect": {"responses": [{"latitude": "x"}]}}`,
	} {
		var c engine.Call
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		if _, err := engine.Prepare(&c); err == nil {
			t.Errorf("prepare(%s) succeeded", raw)
		}
	}
}

func TestASCIISafe(t *testing.T) {
	if got := engine.ASCIISafe("r1:go→py:a/b%"); got != "r1:go%E2%86%92py:a/b%25" {
		t.Errorf("asciiSafe = %q", got)
	}
}

func TestFloatEqualSignedZero(t *testing.T) {
	neg := math.Copysign(0, -1)
	for _, tol := range []*engine.Tolerance{nil, {Abs: 1, Rel: 1}} {
		if engine.FloatEqual(neg, 0, tol) || engine.FloatEqual(0, neg, tol) {
			t.Errorf("tol %v: -0.0 compared equal to 0.0; the sign is a value", tol)
		}
		if !engine.FloatEqual(neg, neg, tol) {
			t.Errorf("tol %v: -0.0 != -0.0", tol)
		}
	}
}

func TestFloatEqualExactValuesIgnoreTolerance(t *testing.T) {
	inf, neg := math.Inf(1), math.Copysign(0, -1)
	pairs := [][2]float64{
		{inf, -inf}, {-inf, 5}, {inf, 1e308}, {5, inf}, // rel*|inf| is infinite
		{neg, 1e-9}, {1e-9, neg}, {neg, -1e-9}, {neg, 0}, {0, neg}, // -0.0 is exact
		{math.NaN(), 1}, {1, math.NaN()},
	}
	for _, tol := range []*engine.Tolerance{nil, {Abs: 1e-6, Rel: 1e-6}, {Abs: 1, Rel: 1}} {
		for _, p := range pairs {
			if engine.FloatEqual(p[0], p[1], tol) {
				t.Errorf("tol %v: %v compared equal to %v", tol, p[0], p[1])
			}
			if !engine.FloatEqual(p[0], p[0], tol) {
				t.Errorf("tol %v: %v != itself", tol, p[0])
			}
		}
	}
}

func TestServerDiffsTrailerMustBeAList(t *testing.T) {
	for _, body := range []string{"null", "{}", "not json"} {
		d := engine.NewDiffer(nil)
		d.ServerDiffs(metadata.Pairs(engine.ServerDiffsKey, body))
		if got := d.Diffs(); len(got) != 1 || got[0].Path != "server.diffs" {
			t.Errorf("trailer %q: diffs %+v, want one server.diffs error", body, got)
		}
	}
	d := engine.NewDiffer(nil)
	d.ServerDiffs(metadata.Pairs(engine.ServerDiffsKey, "[]"))
	if len(d.Diffs()) != 0 {
		t.Errorf("an empty list is no findings, got %+v", d.Diffs())
	}
}

// packedStruct is an Any carrying a Struct whose entries are serialized in the order given
// (concatenated messages merge): the same value, different bytes.
func packedStruct(t *testing.T, entries ...map[string]string) *anypb.Any {
	t.Helper()
	var value []byte
	for _, e := range entries {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range e {
			s.Fields[k] = structpb.NewStringValue(v)
		}
		b, err := proto.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		value = append(value, b...)
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Struct", Value: value}
}

// An Any is compared by the message it carries: its bytes are not canonical (found by grpc-interop
// fuzz, where grpc-go and Python packed the same Struct with its entries in different orders).
func TestDiffAnyByContent(t *testing.T) {
	exp := packedStruct(t, map[string]string{"a": "1"}, map[string]string{"b": "2"})
	same := packedStruct(t, map[string]string{"b": "2"}, map[string]string{"a": "1"})
	wrong := packedStruct(t, map[string]string{"b": "3"}, map[string]string{"a": "1"})
	other := &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Duration", Value: exp.Value}
	d := engine.NewDiffer(nil)
	d.Messages("responses", []proto.Message{exp, exp, exp}, []proto.Message{same, wrong, other})
	want := []string{`responses[1].value.fields["b"].string_value`, "responses[2].type_url"}
	if !slices.Equal(paths(d.Diffs()), want) {
		t.Fatalf("paths %v, want %v", paths(d.Diffs()), want)
	}
}

// A call that may end OK, or that streams responses, must say what comes back: unpinned, five
// garbage responses gave no diff. The client and the generic server both refuse it.
func TestUnpinnedResponsesAreRefused(t *testing.T) {
	const head = `{"method": "/routeguide.RouteGuide/ListFeatures", "streaming": "server_stream",
	  "request_type": "routeguide.Rectangle", "response_type": "routeguide.Feature", "requests": [{}]`
	const unary = `{"method": "/routeguide.RouteGuide/GetFeature", "streaming": "unary",
	  "request_type": "routeguide.Point", "response_type": "routeguide.Feature", "requests": [{}]`
	for raw, refused := range map[string]bool{
		head + `}`: true, // OK, nothing pinned
		head + `, "expect": {"status": "ABORTED"}}`:                                true, // responses may come before the error
		head + `, "expect": {"status": "ABORTED", "status_alternatives": ["OK"]}}`: true,
		unary + `}`: true,
		unary + `, "expect": {"status": "RESOURCE_EXHAUSTED"}}`:        false, // no response before a unary error
		head + `, "expect": {"responses": []}}`:                        false,
		head + `, "expect": {"status": "ABORTED", "responses": [{}]}}`: false,
	} {
		var c engine.Call
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		_, err := engine.Prepare(&c)
		served := engine.ServedCallError(&c)
		if (err != nil) != refused || (served != nil) != refused {
			t.Errorf("%s: client %v, server %v; want refused=%v", raw, err, served, refused)
		}
		if refused && err != nil && !strings.Contains(err.Error(), "expect.responses") {
			t.Errorf("%s: %v does not say what to give", raw, err)
		}
	}
}
