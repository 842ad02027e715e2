package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
	"github.com/grpc-interop-harness/go_peer/internal/testutil"
)

// tlsPeer is a served catalogue on the three listeners, and its certificate folder.
type tlsPeer struct {
	plain, tls, mtls string
	certs            string
	log              *testutil.SyncBuffer
}

// serveTLS serves cases (a JSON list) on plaintext, tls and mtls listeners through engine.Serve,
// as `interop-peer serve --tls-dir … --listen tls=… --listen mtls=…` does, until the test ends.
func serveTLS(t *testing.T, cases string) *tlsPeer {
	t.Helper()
	dir := t.TempDir()
	testutil.WriteCerts(t, dir)
	cat, err := engine.LoadCatalogue([]byte(`{"cases": ` + cases + `}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, log := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	done := make(chan error, 1)
	listens := []engine.Listen{{Name: "plaintext", Addr: "127.0.0.1:0"}, {Name: "tls", Addr: "127.0.0.1:0"}, {Name: "mtls", Addr: "127.0.0.1:0"}}
	go func() { done <- engine.Serve(ctx, listens, dir, cat, out, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop 10 s after its context ended")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no LISTENING line; log:\n%s", log)
		}
		select {
		case err := <-done:
			t.Fatalf("Serve ended before LISTENING: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	f := strings.Fields(out.String())
	if len(f) != 4 || f[0] != "LISTENING" || !strings.HasPrefix(f[2], "tls=127.0.0.1:") || !strings.HasPrefix(f[3], "mtls=127.0.0.1:") {
		t.Fatalf("handshake line %q, want LISTENING <plain> tls=<addr> mtls=<addr>", out.String())
	}
	return &tlsPeer{plain: f[1], tls: strings.TrimPrefix(f[2], "tls="), mtls: strings.TrimPrefix(f[3], "mtls="), certs: dir, log: log}
}

// run runs cases (a JSON list) through engine.RunClient against the peer, the targets and certs
// of the input as given (nil targets: the peer's own), and returns the results by case.
func (p *tlsPeer) run(t *testing.T, cases string, targets map[string]string) map[string]engine.Result {
	t.Helper()
	if targets == nil {
		targets = map[string]string{"tls": p.tls, "mtls": p.mtls}
	}
	doc, _ := json.Marshal(map[string]any{"target": p.plain, "targets": targets, "certs": p.certs,
		"direction": "go-go", "run_id": "t", "concurrency": 4, "cases": json.RawMessage(cases)})
	var out, errb bytes.Buffer
	if err := engine.RunClient(context.Background(), doc, &out, &errb); err != nil {
		t.Fatalf("RunClient: %v\n%s", err, errb.String())
	}
	results := map[string]engine.Result{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r engine.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("result line %q: %v", sc.Text(), err)
		}
		results[r.Case] = r
	}
	return results
}

// channelCall is one SayHello call, checked by the server (a catalogue case); extra is more keys.
func channelCall(extra string) string {
	return `{"method": "/tutorial.HelloService/SayHello", "streaming": "unary", ` + helloCall + `, "checked_by_server": true,
	  "requests": [{"greeting": "a"}], ` + extra + `}`
}

func channelCase(name, channel, call string) string {
	if channel != "" {
		channel = `"channel": ` + channel + `, `
	}
	return `{"name": "` + name + `", ` + channel + `"calls": [` + call + `]}`
}

var okCall = channelCall(`"expect": {"responses": [{"reply": "over the channel"}]}`)

// Every listener serves the catalogue, each with the credentials the case names, and the server
// finds the connection it expects (transport, client certificate, SNI, ALPN).
func TestChannelListenersServe(t *testing.T) {
	cases := "[" + strings.Join([]string{
		channelCase("plain", "", okCall),
		channelCase("plain/explicit", `{"listener": "plaintext"}`, okCall),
		channelCase("tls", `{"listener": "tls"}`, okCall),
		channelCase("tls/server_name", `{"listener": "tls", "server_name": "peer.interop.test"}`, okCall),
		channelCase("mtls", `{"listener": "mtls"}`, okCall),
		channelCase("mtls/explicit", `{"listener": "mtls", "client_cert": "client", "trust": "ca"}`, okCall),
		channelCase("tls/client_cert_not_asked", `{"listener": "tls", "client_cert": "client"}`, okCall),
	}, ",") + "]"
	p := serveTLS(t, cases)
	results := p.run(t, cases, nil)
	if len(results) != 7 {
		t.Fatalf("%d results: %+v", len(results), results)
	}
	for name, r := range results {
		if r.Verdict != engine.Pass || r.Notes != nil {
			t.Errorf("%s: %s %+v notes %v", name, r.Verdict, r.Diffs, r.Notes)
		}
	}
	if strings.Contains(p.log.String(), "server:") {
		t.Errorf("server findings:\n%s", p.log)
	}
}

// refusedCases: every way a secure channel must be refused, and a tls channel said to be refused
// that connects.
var refusedCases = func() string {
	refused := channelCall(`"expect": {"status": "UNAVAILABLE"}`)
	return "[" + strings.Join([]string{
		channelCase("wrong_ca", `{"listener": "tls", "trust": "other_ca", "refused": true}`, refused),
		channelCase("mtls/no_cert", `{"listener": "mtls", "client_cert": "none", "refused": true}`, refused),
		channelCase("mtls/other_client", `{"listener": "mtls", "client_cert": "other_client", "refused": true}`, refused),
		channelCase("server_name_mismatch", `{"listener": "tls", "server_name": "wrong.interop.test", "refused": true}`, refused),
		// as a case file may write it: the trusted certificate, so only the name refuses
		channelCase("mtls/server_name_mismatch", `{"listener": "mtls", "server_name": "wrong.interop.test", "refused": true}`, refused),
		channelCase("not_refused", `{"listener": "tls", "refused": true}`, refused),
	}, ",") + "]"
}()

// takeRefusals asks the server for the handshakes its listeners refused since the last time (a
// call carrying engine.RefusalsKey, as the harness makes one: harness/run/handshakes.py).
func (p *tlsPeer) takeRefusals(t *testing.T) []engine.Refusal {
	t.Helper()
	var trailer metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), engine.RefusalsKey, "take")
	if _, err := healthpb.NewHealthClient(dial(t, p.plain)).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	var out []engine.Refusal
	if err := json.Unmarshal([]byte(strings.Join(trailer.Get(engine.RefusalsKey), "")), &out); err != nil {
		t.Fatalf("trailer %s: %v", engine.RefusalsKey, err)
	}
	return out
}

// refusalKinds: each refusal as "listener cause alert client_cn sni=<SNI>" (no "sni=": no
// ClientHello came), sorted.
func refusalKinds(rs []engine.Refusal) []string {
	var out []string
	for _, r := range rs {
		sni := ""
		if r.ClientHello {
			sni = "sni=" + r.SNI
		}
		out = append(out, strings.Join(strings.Fields(strings.Join([]string{r.Listener, r.Cause, r.Alert, r.ClientCN, sni}, " ")), " "))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// A refused handshake is UNAVAILABLE, with the library's reason in the notes; no server sees the
// call, so none confirms it, and that is not a failure. Each refusal proves its own cause: the
// client's verify error (wrong CA, wrong name), or, on mtls, that the server asked for a
// certificate and the client presented the one its channel names. The server's listeners record
// why they refused (the client's certificate, by name and SHA-256). A channel said to be refused
// that connects fails.
func TestChannelRefused(t *testing.T) {
	p := serveTLS(t, refusedCases)
	p.takeRefusals(t) // none yet: the harness's readiness checks use plaintext
	results := p.run(t, refusedCases, nil)
	// The client's own verify errors, in the notes too. On mtls the server's alert races with the
	// client's first write in TLS 1.3 (the client's handshake is over first), so the client's
	// status message may say "broken pipe": the cause is proved by what each end recorded instead.
	reasons := map[string]string{
		"wrong_ca":                  "certificate signed by unknown authority",
		"mtls/no_cert":              "",
		"mtls/other_client":         "",
		"server_name_mismatch":      "certificate is valid for localhost, peer.interop.test, not wrong.interop.test",
		"mtls/server_name_mismatch": "certificate is valid for localhost, peer.interop.test, not wrong.interop.test",
	}
	for name, text := range reasons {
		r := results[name]
		if r.Verdict != engine.Pass {
			t.Errorf("%s: %s %+v", name, r.Verdict, r.Diffs)
		}
		if note := r.Notes["call 0"]; !strings.HasPrefix(note, "UNAVAILABLE: ") || !strings.Contains(note, text) {
			t.Errorf("%s: notes %v, want call 0: UNAVAILABLE: … %q", name, r.Notes, text)
		}
	}
	// The server answers the expected UNAVAILABLE itself: only the connection shows the lie, on
	// both ends.
	r := results["not_refused"]
	if r.Verdict != engine.Fail || !slices.Equal(diffPaths(r.Diffs), []string{"server.channel.refused", "channel.refused", "channel.refusal"}) {
		t.Errorf("a tls channel that connects passed as refused: %s %+v notes %v", r.Verdict, r.Diffs, r.Notes)
	}
	// grpc-go's client refuses the server's chain with a bad_certificate alert, for its authority
	// and for its name alike: only the SNI (none for an IP address) tells the two apart. A
	// connection that hangs up before its ClientHello is recorded as such.
	hungUp, err := net.Dial("tcp", p.tls)
	if err != nil {
		t.Fatal(err)
	}
	hungUp.Close()
	want := []string{"mtls client_alert bad certificate sni=wrong.interop.test",
		"mtls no_certificate sni=", "mtls unknown_authority interop-other-client sni=",
		"tls client_alert bad certificate sni=", "tls client_alert bad certificate sni=wrong.interop.test", "tls client_closed"}
	// The server's handshake reads a client's alert or hang-up in its own time, maybe after the
	// client's call has ended (the harness waits too: harness/run/handshakes.py SETTLE_S).
	var got []engine.Refusal
	for deadline := time.Now().Add(5 * time.Second); ; {
		got = append(got, p.takeRefusals(t)...)
		if slices.Equal(refusalKinds(got), want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Equal(refusalKinds(got), want) {
		t.Errorf("refusals %v, want %v (%+v)", refusalKinds(got), want, got)
	}
	der, _ := pem.Decode(must(os.ReadFile(filepath.Join(p.certs, "other_client.pem"))))
	sum := sha256.Sum256(der.Bytes)
	for _, x := range got {
		if x.Cause == "unknown_authority" && x.ClientSHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("refused certificate %s, want other_client.pem's SHA-256 %x", x.ClientSHA256, sum)
		}
	}
	// each is logged too, for a reader of the server's log (docs/peer-contract.md)
	for _, line := range []string{
		`[tls] the mtls listener refused a handshake: unknown_authority (client certificate "interop-other-client") (SNI ""): tls: failed to verify certificate: x509: certificate signed by unknown authority`,
		`[tls] the tls listener refused a handshake: client_alert (SNI "wrong.interop.test"): remote error: tls: bad certificate`,
		`[tls] the tls listener refused a handshake: client_closed (no ClientHello): EOF`,
	} {
		if !strings.Contains(p.log.String(), line+"\n") {
			t.Errorf("the server's log lacks %q:\n%s", line, p.log)
		}
	}
	if again := p.takeRefusals(t); len(again) != 0 {
		t.Errorf("refusals are taken once, got them again: %+v", again)
	}
}

// The fault GetClientCertificate fixed: a client that gives crypto/tls its certificate as
// Certificates withholds the untrusted one (the server's CA list does not cover it). The refusal
// then has the wrong cause, and both ends see it: untrusted_client_cert fails on the client's
// record, and the server records no certificate instead of the untrusted one.
func TestChannelRefusedWithheldCertificateFails(t *testing.T) {
	p := serveTLS(t, refusedCases)
	restore := engine.WithholdUnlistedCert()
	results := p.run(t, refusedCases, nil)
	restore()
	r := results["mtls/other_client"]
	if r.Verdict != engine.Fail || !slices.Equal(diffPaths(r.Diffs), []string{"channel.client_cert"}) ||
		r.Diffs[0].Expected != `"interop-other-client" presented` {
		t.Errorf("a withheld untrusted certificate passed: %s %+v", r.Verdict, r.Diffs)
	}
	if got := refusalKinds(p.takeRefusals(t)); slices.Contains(got, "mtls unknown_authority interop-other-client sni=") ||
		!slices.Contains(got, "mtls no_certificate sni=") {
		t.Errorf("the server saw %v, want no_certificate only on mtls", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The server compares the connection with the case's channel: a client that connects otherwise
// than the catalogue says fails on the server's findings.
func TestServerChannelChecks(t *testing.T) {
	catalogue := "[" + strings.Join([]string{
		channelCase("mtls_over_tls", `{"listener": "mtls"}`, okCall),
		channelCase("sni", `{"listener": "tls", "server_name": "peer.interop.test"}`, okCall),
		channelCase("tls_over_plaintext", `{"listener": "tls"}`, okCall),
		channelCase("plaintext_over_tls", `{"listener": "plaintext"}`, okCall),
	}, ",") + "]"
	p := serveTLS(t, catalogue)
	want := map[string][]string{
		"mtls_over_tls":      {"server.channel.client_cn"},
		"sni":                {"server.channel.sni"},
		"tls_over_plaintext": {"server.channel.transport", "server.channel.alpn"},
	}
	// The client says the same case, but connects otherwise: mtls goes to the tls listener, the
	// SNI override is left out, tls goes to the plaintext connection.
	client := "[" + strings.Join([]string{
		channelCase("mtls_over_tls", `{"listener": "mtls"}`, okCall),
		channelCase("sni", `{"listener": "tls"}`, okCall),
		channelCase("tls_over_plaintext", "", okCall),
	}, ",") + "]"
	results := p.run(t, client, map[string]string{"tls": p.tls, "mtls": p.tls})
	for name, paths := range want {
		r := results[name]
		if r.Verdict != engine.Fail || !slices.Equal(diffPaths(r.Diffs), paths) {
			t.Errorf("%s: %s, diffs %+v, want paths %v", name, r.Verdict, r.Diffs, paths)
		}
	}
	if d := results["mtls_over_tls"].Diffs; len(d) == 1 && (d[0].Expected != `"interop-client"` || d[0].Got != `""`) {
		t.Errorf("client_cn diff %+v", d[0])
	}
	// ... and a case on the plaintext listener sent over tls.
	r := p.run(t, "["+channelCase("plaintext_over_tls", `{"listener": "tls"}`, okCall)+"]", nil)["plaintext_over_tls"]
	if r.Verdict != engine.Fail || !slices.Equal(diffPaths(r.Diffs), []string{"server.channel.transport"}) {
		t.Errorf("plaintext_over_tls: %s %+v", r.Verdict, r.Diffs)
	}
}

// The token travels through the oauth call credentials; a server requiring another token, or
// getting none, answers UNAUTHENTICATED and still confirms the call. Notes carry the status.
func TestRequireToken(t *testing.T) {
	required := channelCall(`"server": {"require_token": "t0k"}, "expect": {"responses": [{"reply": "with token"}]}`)
	cases := "[" + strings.Join([]string{
		channelCase("token", `{"listener": "tls", "token": "t0k"}`, required),
		channelCase("wrong_token", `{"listener": "mtls", "token": "nope"}`, required),
		channelCase("no_token", `{"listener": "tls"}`, required),
	}, ",") + "]"
	p := serveTLS(t, cases)
	results := p.run(t, cases, nil)
	if r := results["token"]; r.Verdict != engine.Pass {
		t.Errorf("token: %s %+v", r.Verdict, r.Diffs)
	}
	for _, name := range []string{"wrong_token", "no_token"} {
		r := results[name]
		// the status differs, the response is missing; server.checked is present (no diff)
		if r.Verdict != engine.Fail || len(r.Diffs) == 0 || r.Diffs[0].Path != "status.code" ||
			r.Diffs[0].Got != `UNAUTHENTICATED "bearer token required"` || slices.Contains(diffPaths(r.Diffs), "server.checked") {
			t.Errorf("%s: %s %+v", name, r.Verdict, r.Diffs)
		}
		if r.Notes["call 0"] != "UNAUTHENTICATED: bearer token required" {
			t.Errorf("%s: notes %v", name, r.Notes)
		}
	}
}

// A channel's keys are checked: a typo or a TLS key on the plaintext listener is an error, on the
// client and in the server's catalogue.
func TestChannelValidation(t *testing.T) {
	cases := "[" + strings.Join([]string{
		channelCase("bad_listener", `{"listener": "quic"}`, okCall),
		channelCase("bad_trust", `{"listener": "tls", "trust": "anyone"}`, okCall),
		channelCase("bad_cert", `{"listener": "mtls", "client_cert": "server"}`, okCall),
		channelCase("tls_key_on_plaintext", `{"server_name": "x"}`, okCall),
		channelCase("unknown_key", `{"listener": "tls", "alpn": "h3"}`, okCall),
	}, ",") + "]"
	p := serveTLS(t, "[]")
	for name, r := range p.run(t, cases, nil) {
		if r.Verdict != engine.Error {
			t.Errorf("%s: %s %+v", name, r.Verdict, r.Diffs)
		}
	}
	// No target for a listener, or no certificate folder: the case is an error, the run goes on.
	r := p.run(t, "["+channelCase("no_target", `{"listener": "mtls"}`, okCall)+"]", map[string]string{"tls": p.tls})["no_target"]
	if r.Verdict != engine.Error || !strings.Contains(r.Diffs[0].Got, "mtls has no address") {
		t.Errorf("no_target: %s %+v", r.Verdict, r.Diffs)
	}
	p2 := serveTLS(t, "["+channelCase("bad", `{"listener": "tls", "client_cert": "nobody"}`, okCall)+"]")
	r = p2.run(t, "["+channelCase("bad", `{"listener": "tls"}`, okCall)+"]", nil)["bad"]
	if r.Verdict != engine.Fail || !strings.Contains(r.Diffs[0].Got, "FAILED_PRECONDITION") || !strings.Contains(r.Diffs[0].Got, "client_cert") {
		t.Errorf("catalogue case with a bad channel: %s %+v", r.Verdict, r.Diffs)
	}
}
