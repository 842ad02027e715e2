package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
)

// prepareOne parses one call of a case (its requests and expected responses) as the client does.
func prepareOne(t *testing.T, call string) (*engine.Plan, error) {
	t.Helper()
	c, err := engine.ParseCase(json.RawMessage(`{"name": "bulk", "calls": [{` + call + `}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Calls[0].Expect.Responses == nil { // these tests are about the requests: no response is checked
		c.Calls[0].Expect.Responses = &[]json.RawMessage{}
	}
	return engine.Prepare(&c.Calls[0])
}

const outputCall = `"method": "/grpc.testing.TestService/StreamingOutputCall", "streaming": "server_stream",
  "request_type": "grpc.testing.StreamingOutputCallRequest", "response_type": "grpc.testing.StreamingOutputCallResponse"`

// A @repeat spec gives the same message as the JSON literal it stands for: a bytes field inside a
// message field, a repeated message field, and a string field.
func TestBulkSpecExpandsToTheLiteral(t *testing.T) {
	spec := `{"payload": {"type": "COMPRESSABLE", "body": {"@repeat": {"count": 3000, "unit": "eHk="}}},
	  "responseParameters": {"@repeat": {"count": 500, "unit": {"size": 7, "intervalUs": 2}}}, "responseType": "COMPRESSABLE"}`
	p, err := prepareOne(t, outputCall+`, "requests": [`+spec+`], "expect": {"responses": [{"payload": {"body": {"@repeat": {"count": 2, "unit": "AAE="}}}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	params := make([]string, 500)
	for i := range params {
		params[i] = `{"size": 7, "intervalUs": 2}`
	}
	literal := `{"payload": {"type": "COMPRESSABLE", "body": "` + strings.Repeat("eHl4eXh5", 1000) + `"},
	  "responseParameters": [` + strings.Join(params, ",") + `], "responseType": "COMPRESSABLE"}`
	want := &testpb.StreamingOutputCallRequest{}
	if err := protojson.Unmarshal([]byte(literal), want); err != nil {
		t.Fatal(err)
	}
	if got := engine.PlanRequests(p); len(got) != 1 || !proto.Equal(got[0], want) {
		t.Errorf("expanded request differs from the literal")
	}
	if got := engine.PlanExpected(p); len(got) != 1 || !proto.Equal(got[0], &testpb.StreamingOutputCallResponse{
		Payload: &testpb.Payload{Body: []byte{0, 1, 0, 1}}}) {
		t.Errorf("expanded response %v", got)
	}
	// a string field
	p, err = prepareOne(t, `"method": "/tutorial.HelloService/SayHello", "streaming": "unary", `+helloCall+`,
	  "requests": [{"greeting": {"@repeat": {"count": 4, "unit": "hé"}}}]`)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := protojson.Marshal(engine.PlanRequests(p)[0]); !bytes.Contains(got, []byte(`"héhéhéhé"`)) {
		t.Errorf("string spec gave %s", got)
	}
}

// A spec that cannot be expanded is an error naming the field, never a silently smaller message.
func TestBulkSpecErrors(t *testing.T) {
	for spec, want := range map[string]string{
		`{"responseType": {"@repeat": {"count": 2, "unit": "COMPRESSABLE"}}}`:      "responseType",
		`{"payload": {"body": {"@repeat": {"count": -1, "unit": "AA=="}}}}`:        "non-negative",
		`{"payload": {"body": {"@repeat": {"count": 2}}}}`:                         "count and unit",
		`{"payload": {"body": {"@repeat": {"count": 2, "unit": "AA==", "x": 1}}}}`: "count and unit",
		`{"payload": {"body": {"@repeat": {"count": 2, "unit": 5}}}}`:              "payload.body",
		`{"nope": {"@repeat": {"count": 2, "unit": "AA=="}}}`:                      "nope",
	} {
		_, err := prepareOne(t, outputCall+`, "requests": [`+spec+`]`)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %q", spec, err, want)
		}
	}
}

// Cases in flight at once keep their own deadlines and come out in input order, the same results
// as one at a time.
func TestRunClientConcurrency(t *testing.T) {
	const waits = 8
	var extra []string
	for i := 0; i < waits; i++ {
		extra = append(extra, fmt.Sprintf(`{"name": "g/deadline_%d", "calls": [{"method": "/tutorial.HelloService/SayHello",
		  "streaming": "unary", `+helloCall[:strings.Index(helloCall, `, "timeout_ms"`)]+`, "timeout_ms": 500,
		  "server": {"delay_ms": 3000}, "requests": [{}], "expect": {"status": "DEADLINE_EXCEEDED"}}]}`, i))
	}
	cases := genericCases[:strings.LastIndex(genericCases, "]")] + "," + strings.Join(extra, ",") + "]"
	addr, _ := genericServer(t, cases)
	run := func(concurrency int) ([]engine.Result, time.Duration) {
		doc := fmt.Sprintf(`{"target": %q, "direction": "go-go", "run_id": "r", "concurrency": %d, "cases": %s}`,
			addr, concurrency, cases)
		var out, errs bytes.Buffer
		start := time.Now()
		if err := engine.RunClient(context.Background(), []byte(doc), &out, &errs); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		var results []engine.Result
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var r engine.Result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("bad line %q: %v", sc.Text(), err)
			}
			results = append(results, r)
		}
		return results, took
	}
	one, _ := run(1)
	many, took := run(waits)
	if len(one) != 14+waits || len(many) != len(one) {
		t.Fatalf("%d and %d results", len(one), len(many))
	}
	for i := range one {
		if many[i].Case != one[i].Case || many[i].Verdict != engine.Pass || one[i].Verdict != engine.Pass {
			t.Errorf("result %d: %s %s (one at a time: %s %s) %+v", i, many[i].Case, many[i].Verdict, one[i].Case,
				one[i].Verdict, many[i].Diffs)
		}
	}
	// one at a time the deadlines alone take waits x 500 ms; in flight together they overlap
	if floor := waits * 500 * time.Millisecond; took >= floor {
		t.Errorf("%d cases in flight took %v, no less than the %v they take one after another", waits, took, floor)
	}
	doc := `{"target": "` + addr + `", "concurrency": -1, "cases": []}`
	if err := engine.RunClient(context.Background(), []byte(doc), &bytes.Buffer{}, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "concurrency") {
		t.Errorf("negative concurrency: %v", err)
	}
}

// The generic server expands the spec too: it checks the 1 MiB request it receives against it and
// answers the expanded response, which the client checks against the same spec. A client that
// sends one unit less is caught by the server.
func TestGenericServerExpandsBulk(t *testing.T) {
	bulkCase := func(count int) string {
		return fmt.Sprintf(`[{"name": "g/bulk", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", `+
			helloCall+`, "requests": [{"greeting": {"@repeat": {"count": %d, "unit": "g"}}}],
		  "expect": {"responses": [{"reply": {"@repeat": {"count": 524288, "unit": "rr"}}}]}}]}]`, count)
	}
	addr, log := genericServer(t, bulkCase(1048576))
	conn := dial(t, addr)
	if r := runCases(t, conn, bulkCase(1048576))["g/bulk"]; r.Verdict != engine.Pass {
		t.Errorf("g/bulk: %s %+v\n%s", r.Verdict, r.Diffs, log)
	}
	r := runCases(t, conn, bulkCase(1048575))["g/bulk"]
	if r.Verdict != engine.Fail || len(r.Diffs) == 0 || !strings.Contains(r.Diffs[0].Path, "server.requests[0].greeting") {
		t.Errorf("one unit short: %s %+v", r.Verdict, r.Diffs)
	}
}

// A required field may be the one the spec fills (proto2's Legacy.id); the expanded message is
// still checked for required fields, as protojson checks a literal.
func TestBulkSpecFillsARequiredField(t *testing.T) {
	call := func(value string) string {
		return `"method": "/shapes.legacy.LegacyService/Roundtrip", "streaming": "unary",
		  "request_type": "shapes.legacy.Legacy", "response_type": "shapes.legacy.Legacy", "requests": [` + value + `]`
	}
	p, err := prepareOne(t, call(`{"id": {"@repeat": {"count": 3, "unit": "ab"}}, "child": {"id": "c", "raw": {"@repeat": {"count": 2, "unit": "AP8="}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := protojson.Marshal(engine.PlanRequests(p)[0]); !bytes.Contains(got, []byte(`"ababab"`)) ||
		!bytes.Contains(got, []byte(`"AP8A/w=="`)) {
		t.Errorf("expanded %s", got)
	}
	if _, err := prepareOne(t, call(`{"label": {"@repeat": {"count": 3, "unit": "ab"}}}`)); err == nil ||
		!strings.Contains(err.Error(), "required field shapes.legacy.Legacy.id not set") {
		t.Errorf("missing required id: %v", err)
	}
}
