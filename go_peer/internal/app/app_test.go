package app

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/grpc-interop-harness/go_peer/internal/testutil"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"client"}, {"serve", "--nope"}, {"serve", "extra"}, {"serve", "--addr", "nope"}, {"version", "x"}} {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 2 {
			t.Errorf("Run(%q) = %d, want 2", args, code)
		}
		if !strings.Contains(errb.String(), "usage:") {
			t.Errorf("Run(%q): no usage on stderr: %q", args, errb.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "grpc-go ") || !strings.Contains(out.String(), "protobuf-go ") {
		t.Errorf("version output %q", out.String())
	}
}

func TestClientBadInput(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"client", "--cases", "-"}, strings.NewReader("{"), &out, &errb); code != 1 {
		t.Errorf("bad JSON: exit %d, want 1", code)
	}
	if code := Run(context.Background(), []string{"client", "--cases", "/nonexistent.json"}, nil, &out, &errb); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

func TestServeBadCatalogue(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--cases", "/nonexistent.json"}, nil, &out, &errb); code != 1 {
		t.Errorf("missing catalogue: exit %d, want 1", code)
	}
	if code := Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--cases", "-"}, strings.NewReader(`{"cases": [`), &out, &errb); code != 1 {
		t.Errorf("bad catalogue: exit %d, want 1", code)
	}
	if out.Len() != 0 {
		t.Errorf("no LISTENING line may be printed for a bad catalogue: %q", out.String())
	}
}

func TestServeWithCatalogue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stops at once after the handshake
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--cases", "-"}, strings.NewReader(`{"cases": []}`), &out, &errb)
	if code != 0 || !strings.HasPrefix(out.String(), "LISTENING 127.0.0.1:") || !strings.Contains(errb.String(), "0 cases") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// The server stops by itself when stdin ends (the harness holding it is gone), and only then.
func TestServeStopsOnStdinEOF(t *testing.T) {
	r, w := io.Pipe()
	var out, errb testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--stop-on-stdin-eof"}, r, &out, &errb)
	}()
	select {
	case code := <-done:
		t.Fatalf("serve returned %d before stdin ended: %s", code, errb.String())
	case <-time.After(300 * time.Millisecond):
	}
	w.Close()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(errb.String(), "stdin closed") {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve still running 10 s after stdin ended")
	}
}

func TestStopOnEOFNeedsStdin(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"client", "--cases", "-", "--stop-on-stdin-eof"}, strings.NewReader("{}"), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "cannot be -") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
