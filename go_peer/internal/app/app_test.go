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
	for _, args := range [][]string{{}, {"bogus"}, {"client"}, {"serve", "--nope"}, {"serve", "extra"}, {"serve", "--addr", "nope"}, {"version", "x"}, {"probe-client"}, {"probe-client", "--target", "nope"}} {
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

func TestProbeClientEndsWithStdin(t *testing.T) {
	var out, errb bytes.Buffer
	// no call: it connects lazily, so nothing listening at the target is no error
	if code := Run(context.Background(), []string{"probe-client", "--target", "127.0.0.1:1"}, strings.NewReader(""), &out, &errb); code != 0 || out.Len() != 0 {
		t.Errorf("probe-client with no calls: exit %d, stdout %q, stderr %q; want 0 and no output", code, out.String(), errb.String())
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

// --listen takes only the listeners the engine serves, each once, and needs the certificate folder.
func TestListenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteCerts(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a serve that wrongly accepts its flags stops at once (and exits 0)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--tls-dir", dir, "--listen", "quic=127.0.0.1:0"}, `unknown listener "quic"`},
		{[]string{"--tls-dir", dir, "--listen", "plaintext=127.0.0.1:0"}, `unknown listener "plaintext"`},
		{[]string{"--tls-dir", dir, "--listen", "tls"}, "not NAME=HOST:PORT"},
		{[]string{"--tls-dir", dir, "--listen", "tls=nope"}, "bad address"},
		{[]string{"--tls-dir", dir, "--listen", "tls=127.0.0.1:0", "--listen", "tls=127.0.0.1:0"}, "given twice"},
		{[]string{"--listen", "mtls=127.0.0.1:0"}, "needs --tls-dir"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)
		if code := Run(ctx, args, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.says) ||
			!strings.Contains(errb.String(), "usage:") || out.Len() != 0 {
			t.Errorf("Run(%q) = %d, stdout %q, stderr %q; want 2 and %q", args, code, out.String(), errb.String(), tc.says)
		}
	}
	// A folder without the certificates: the listener's error names the file, before any LISTENING.
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--tls-dir", t.TempDir(), "--listen", "tls=127.0.0.1:0"}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "server.pem") || out.Len() != 0 {
		t.Errorf("empty --tls-dir: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// One handshake line names every listener, once all are bound.
func TestServeTLSListeners(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteCerts(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stops at once after the handshake
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--tls-dir", dir, "--listen", "mtls=127.0.0.1:0", "--listen", "tls=[::1]:0"},
		nil, &out, &errb)
	f := strings.Fields(out.String())
	if code != 0 || len(f) != 4 || f[0] != "LISTENING" || !strings.HasPrefix(f[1], "127.0.0.1:") ||
		!strings.HasPrefix(f[2], "mtls=127.0.0.1:") || !strings.HasPrefix(f[3], "tls=[::1]:") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
