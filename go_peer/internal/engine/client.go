package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Result is one output line: the verdict of one case.
type Result struct {
	Case       string  `json:"case"`
	Direction  string  `json:"direction"`
	Verdict    string  `json:"verdict"`
	Diffs      []Diff  `json:"diffs"`
	DurationMS float64 `json:"duration_ms"`
	// Notes: for a case with a channel, "call <i>" -> "<STATUS>: <message>" of every call that did
	// not end OK: the library's own wording of a refused handshake, recorded, never compared.
	Notes map[string]string `json:"notes,omitempty"`
}

// Verdicts.
const (
	Pass  = "pass"
	Fail  = "fail"
	Error = "error"
)

// Dial opens the insecure channel of a run's plaintext listener.
func Dial(target string) (*grpc.ClientConn, error) {
	return dial(target, insecureCredentials())
}

func insecureCredentials() credentials.TransportCredentials { return insecure.NewCredentials() }

// dial opens a connection with the given transport credentials. It never uses a proxy. The
// engine's stats handler lets the client see how the responses were compressed.
// extra: a channel's own options (its keepalive).
func dial(target string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithNoProxy(),
		grpc.WithStatsHandler(StatsHandler())}, extra...)...)
}

// RunClient runs every case of a JSON input document (a bench document's phases: see runBench), up to in.Concurrency of them at once on
// one connection, and writes one JSON line per case to stdout, in input order (a line is written
// as soon as every case before it has finished). It fails only when the client itself cannot work
// (bad document, cannot dial).
func RunClient(ctx context.Context, doc []byte, stdout, stderr io.Writer) error {
	var in Input
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("cases document is not valid JSON: %v", err)
	}
	if in.Target == "" {
		return fmt.Errorf("cases document has no target")
	}
	if in.Concurrency < 0 {
		return fmt.Errorf("cases document: concurrency must not be negative, got %d", in.Concurrency)
	}
	conn, err := Dial(in.Target)
	if err != nil {
		return fmt.Errorf("cannot dial %s: %v", in.Target, err)
	}
	defer conn.Close()
	if in.Phases != nil {
		return runBench(ctx, conn, &in, in.Phases, stdout)
	}
	chans := NewChannels(conn, &in)
	defer chans.Close()
	results := runAll(ctx, chans, &in)
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range in.Cases {
		r, ok := <-results[i]
		if !ok { // never started: the run was interrupted
			return fmt.Errorf("interrupted: %v", ctx.Err())
		}
		if r.Verdict == Error {
			fmt.Fprintf(stderr, "[%s] error: %s\n", r.Case, r.Diffs[0].Got)
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// runAll starts the cases on a bounded number of goroutines; each case's result arrives on its own
// channel, so the caller reads them in input order whatever order they finish in. A case not
// started because ctx ended gets its channel closed without a result.
func runAll(ctx context.Context, chans *Channels, in *Input) []chan Result {
	n := in.Concurrency
	if n < 1 {
		n = 1
	}
	results := make([]chan Result, len(in.Cases))
	for i := range results {
		results[i] = make(chan Result, 1)
	}
	slots := make(chan struct{}, n)
	go func() {
		for i, raw := range in.Cases {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				for _, ch := range results[i:] {
					close(ch)
				}
				return
			}
			go func(ch chan Result, raw json.RawMessage) {
				defer func() { <-slots }()
				ch <- RunCaseOn(ctx, chans, in, raw)
			}(results[i], raw)
		}
	}()
	return results
}

// RunCase runs one case (given as raw JSON) on conn, the plaintext connection, and returns its
// verdict; a case with a channel gets a connection of its own for this run.
func RunCase(ctx context.Context, conn grpc.ClientConnInterface, in *Input, raw json.RawMessage) Result {
	chans := NewChannels(conn, in)
	defer chans.Close()
	return RunCaseOn(ctx, chans, in, raw)
}

// RunCaseOn runs one case on the connection of its channel, kept in chans.
func RunCaseOn(ctx context.Context, chans *Channels, in *Input, raw json.RawMessage) Result {
	start := time.Now()
	r := Result{Direction: in.Direction, Diffs: []Diff{}}
	finish := func() Result {
		r.DurationMS = math.Round(float64(time.Since(start).Microseconds())) / 1000
		return r
	}
	fail := func(call int, err error) Result {
		r.Verdict = Error
		r.Diffs = []Diff{{Call: call, Path: "error", Expected: "", Got: err.Error()}}
		return finish()
	}
	c, err := parseCase(raw)
	if err != nil {
		var named struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &named)
		r.Case = named.Name
		return fail(0, fmt.Errorf("case is not valid: %v", err))
	}
	r.Case = c.Name
	if c.Name == "" {
		return fail(0, fmt.Errorf("case has no name"))
	}
	if len(c.Calls) == 0 {
		return fail(0, fmt.Errorf("case has no calls"))
	}
	var channel *Channel
	if c.Channel != nil {
		ch, err := c.Channel.normalized()
		if err != nil {
			return fail(0, err)
		}
		channel = &ch
	}
	plans := make([]*plan, len(c.Calls))
	for i := range c.Calls {
		p, err := prepare(&c.Calls[i])
		if err != nil {
			return fail(i, fmt.Errorf("calls[%d]: %v", i, err))
		}
		if channel != nil {
			p.refused, p.tls = channel.Refused, channel.secure()
			if channel.Token != "" {
				p.opts = append(p.opts, tokenCredentials(channel.Token))
			}
		}
		plans[i] = p
	}
	conn, err := chans.conn(channel)
	if err != nil {
		return fail(0, err)
	}
	caseMD := metadata.Pairs(
		CaseKey, asciiSafe(c.Name),
		SessionKey, asciiSafe(in.RunID+":"+in.Direction+":"+c.Name))
	for i, p := range plans {
		md := metadata.Join(caseMD, metadata.Pairs(CallKey, strconv.Itoa(i)))
		if p.call.Protojson { // this side's rendering of its request, for the server to parse (wire.go)
			md = metadata.Join(md, metadata.Pairs(JSONKey, protojsonOf(p.requests[0])))
		}
		out := invoke(ctx, conn, p, md)
		if out.overrun {
			return fail(i, fmt.Errorf("NoDeadlineOverrun: %s: the call has no deadline (no_deadline) and had not ended "+
				"after its timeout_ms (%g ms), which bounds it: the harness cancelled it after %d response(s); the "+
				"server never ended it, or the client waited for an answer that never came",
				strings.TrimPrefix(p.call.Method, "/"), float64(p.timeout)/float64(time.Millisecond), len(out.responses)))
		}
		r.Diffs = append(r.Diffs, check(i, p, out)...)
		if p.refused && channel.secure() { // its own cause, not any refusal
			d := &differ{call: i}
			chans.refusalDiffs(*channel, d)
			r.Diffs = append(r.Diffs, d.diffs...)
		}
		if channel != nil && out.status.Code() != codes.OK {
			if r.Notes == nil {
				r.Notes = map[string]string{}
			}
			r.Notes[fmt.Sprintf("call %d", i)] = CodeName(out.status.Code()) + ": " + out.status.Message()
		}
	}
	r.Verdict = Pass
	if len(r.Diffs) > 0 {
		r.Verdict = Fail
	}
	return finish()
}
