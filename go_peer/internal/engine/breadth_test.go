package engine_test

import (
	"testing"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
	"google.golang.org/grpc/codes"
)

// Issue 8: the case data the metadata and status breadth cases use, read by the Go engine.

func TestCodesPastSixteenByName(t *testing.T) {
	for name, want := range map[string]codes.Code{"CODE_17": 17, "CODE_99": 99, "UNKNOWN": codes.Unknown} {
		if got, ok := engine.CodeByName(name); !ok || got != want {
			t.Errorf("%s: %v %v, want %v", name, got, ok, want)
		}
		if engine.CodeName(want) != name {
			t.Errorf("CodeName(%d) = %s, want %s", want, engine.CodeName(want), name)
		}
	}
	for _, name := range []string{"CODE_2", "CODE_017", "CODE_x", "CODE_4294967296", "code_17"} {
		if _, ok := engine.CodeByName(name); ok {
			t.Errorf("%s must not name a code", name)
		}
	}
}

// The generic server and client against each other: a code past 16 goes out as it is, details
// contradicting the status travel as they were written, a detail of an unknown type keeps its URL
// and bytes, and server.metadata / server.headers replace what each side expects.
func TestGenericServerBreadth(t *testing.T) {
	cases := `[
 {"name": "b/code_17", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "expect": {"status": "UNKNOWN"}, "server": {"status": "CODE_17"}}]},
 {"name": "b/unknown_detail", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "expect": {"status": "ABORTED", "details": [
     {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"},
     {"@type": "type.googleapis.com/nobody.Knows", "@encoded": "CAE="}]}}]},
 {"name": "b/details_message", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "requests": [{}], "expect": {"status": "INVALID_ARGUMENT", "message": "header"},
   "server": {"details_status": {"code": "INVALID_ARGUMENT", "message": "details", "details": [{"@type": "type.googleapis.com/nobody.Knows", "@encoded": "CAE="}]}}}]},
 {"name": "b/reserved", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "metadata": {"grpc-status": ["3"], "x-kept": ["k"]}, "requests": [{}], "expect": {"responses": [{}], "headers": {"grpc-status": []}},
   "server": {"metadata": {"grpc-status": [], "x-kept": ["k"]}, "headers": {"grpc-status": ["3"]}}}]},
 {"name": "b/upper", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
   "metadata": {"x-Upper": ["v"]}, "requests": [{}], "expect": {"status": "INTERNAL"}, "server": {"status": "OK", "responses": [{}]}}]}
]`
	addr, _ := genericServer(t, cases)
	results := runCases(t, dial(t, addr), cases)
	if r := results["b/code_17"]; len(r.Diffs) != 1 || r.Diffs[0].Got != "CODE_17" {
		t.Errorf("code_17: grpc-go keeps the number: %+v", r.Diffs)
	}
	if r := results["b/unknown_detail"]; r.Verdict != engine.Pass {
		t.Errorf("unknown_detail: %s %+v", r.Verdict, r.Diffs)
	}
	if r := results["b/details_message"]; len(r.Diffs) != 1 || r.Diffs[0].Path != "status.message" || r.Diffs[0].Got != `"details"` {
		t.Errorf("details_message: grpc-go takes the message of grpc-status-details-bin: %+v", r.Diffs)
	}
	if r := results["b/reserved"]; r.Verdict != engine.Pass {
		t.Errorf("reserved: %s %+v", r.Verdict, r.Diffs)
	}
	if r := results["b/upper"]; r.Verdict != engine.Pass {
		t.Errorf("upper: grpc-go refuses the raw key itself: %s %+v", r.Verdict, r.Diffs)
	}
}
