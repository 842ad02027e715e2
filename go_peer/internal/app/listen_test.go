package app

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// Each --listen adds a named listener, announced on the one LISTENING line after the plaintext address.
func TestServeNamedListeners(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stops at once after the handshake
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--listen", "max_age=127.0.0.1:0",
		"--listen", "restart=127.0.0.1:0"}, nil, &out, &errb)
	line := regexp.MustCompile(`^LISTENING 127\.0\.0\.1:\d+ max_age=127\.0\.0\.1:\d+ restart=127\.0\.0\.1:\d+\n$`)
	if code != 0 || !line.MatchString(out.String()) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

func TestServeBadListeners(t *testing.T) {
	for _, args := range [][]string{{"--listen", "max_age"}, {"--listen", "max_age=nope"},
		{"--listen", "max_age=127.0.0.1:0", "--listen", "max_age=127.0.0.1:0"}} {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), nil, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--listen", "nope=127.0.0.1:0"}, nil, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), `unknown listener "nope"`) || out.Len() != 0 {
		t.Errorf("unknown listener: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
