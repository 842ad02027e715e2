package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
)

// A bench document's phases stop at their call count or their time budget, whichever comes first,
// and count every verdict.
func TestRunBenchIsBoundedInCountAndTime(t *testing.T) {
	hello := `{"name": "g/unary", "calls": [{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `,
	  "requests": [{"greeting": "x"}], "expect": {"responses": [{"reply": "y"}]}}]}`
	wrong := strings.Replace(hello, `"reply": "y"`, `"reply": "z"`, 1)
	addr, _ := genericServer(t, "["+hello+"]")
	doc := fmt.Sprintf(`{"target": %q, "direction": "go-go", "run_id": "b", "phases": [
	  {"case": %s, "calls": 25, "concurrency": 4, "budget_ms": 60000},
	  {"case": %s, "calls": 100000000, "concurrency": 2, "budget_ms": 300},
	  {"case": %s, "calls": 3, "concurrency": 1, "budget_ms": 60000}]}`, addr, hello, hello, wrong)
	var out bytes.Buffer
	if err := engine.RunClient(context.Background(), []byte(doc), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var phases []engine.BenchResult
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r engine.BenchResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		phases = append(phases, r)
	}
	if len(phases) != 3 {
		t.Fatalf("%d phases: %s", len(phases), out.String())
	}
	if p := phases[0]; p.Calls != 25 || len(p.LatenciesMS) != 25 || p.Verdicts[engine.Pass] != 25 || p.Case != "g/unary" {
		t.Errorf("count-bounded phase: %+v", p)
	}
	if p := phases[1]; p.Calls >= 100000000 || p.Calls != len(p.LatenciesMS) || p.ElapsedMS < 300 || p.ElapsedMS > 5000 {
		t.Errorf("time-bounded phase: %d calls in %v ms", p.Calls, p.ElapsedMS)
	}
	if p := phases[2]; p.Verdicts[engine.Fail] != 3 || p.Problem == nil || p.Problem.Diffs[0].Path == "" {
		t.Errorf("failing phase: %+v", p)
	}
	for _, bad := range []string{`"calls": 0, "concurrency": 1, "budget_ms": 10`, `"calls": 1, "concurrency": 1, "budget_ms": 0`} {
		doc := fmt.Sprintf(`{"target": %q, "phases": [{"case": %s, %s}]}`, addr, hello, bad)
		if err := engine.RunClient(context.Background(), []byte(doc), &bytes.Buffer{}, &bytes.Buffer{}); err == nil ||
			!strings.Contains(err.Error(), "bounded") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
