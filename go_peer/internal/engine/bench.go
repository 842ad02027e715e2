package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// BenchPhase is one measurement of `grpc-interop bench` (docs/peer-contract.md, "Bench"): the
// same case run again and again, Concurrency at a time, until Calls have started or BudgetMS has
// passed, whichever comes first. Every call is a whole case run, checked as in a normal run.
type BenchPhase struct {
	Case        json.RawMessage `json:"case"`
	Calls       int             `json:"calls"`
	Concurrency int             `json:"concurrency"`
	BudgetMS    float64         `json:"budget_ms"`
}

// BenchResult is one output line of a bench document: what one phase measured.
type BenchResult struct {
	Phase       int            `json:"phase"`
	Case        string         `json:"case"`
	Calls       int            `json:"calls"`
	ElapsedMS   float64        `json:"elapsed_ms"`
	LatenciesMS []float64      `json:"latencies_ms"`
	Verdicts    map[string]int `json:"verdicts"`
	Problem     *Result        `json:"problem,omitempty"` // the first call that did not pass
}

// RunBench runs the phases of a bench document one after another on one connection and writes one
// BenchResult line per phase.
func runBench(ctx context.Context, conn grpc.ClientConnInterface, in *Input, phases []BenchPhase, stdout io.Writer) error {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for i, ph := range phases {
		if ph.Calls < 1 || ph.Concurrency < 1 || ph.BudgetMS <= 0 {
			return fmt.Errorf("bench phase %d: calls, concurrency and budget_ms must be positive (every loop is "+
				"bounded in count and time), got %d, %d, %v", i, ph.Calls, ph.Concurrency, ph.BudgetMS)
		}
		r := benchPhase(ctx, conn, in, ph)
		r.Phase = i
		if err := enc.Encode(r); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %v", err)
		}
	}
	return nil
}

func benchPhase(ctx context.Context, conn grpc.ClientConnInterface, in *Input, ph BenchPhase) BenchResult {
	var (
		mu      sync.Mutex
		started int
		out     = BenchResult{Verdicts: map[string]int{}, LatenciesMS: []float64{}}
		wg      sync.WaitGroup
	)
	start := time.Now()
	budget := time.Duration(ph.BudgetMS * float64(time.Millisecond))
	next := func() bool { // one more call may start: under both bounds
		mu.Lock()
		defer mu.Unlock()
		if started >= ph.Calls || time.Since(start) >= budget || ctx.Err() != nil {
			return false
		}
		started++
		return true
	}
	for w := 0; w < ph.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next() {
				r := RunCase(ctx, conn, in, ph.Case)
				mu.Lock()
				out.Case = r.Case
				out.LatenciesMS = append(out.LatenciesMS, r.DurationMS)
				out.Verdicts[r.Verdict]++
				if r.Verdict != Pass && out.Problem == nil {
					out.Problem = &r
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.Calls = started
	out.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
	return out
}
