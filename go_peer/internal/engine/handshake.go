package engine

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// Why a refused channel was refused (docs/peer-contract.md, "Channels: why a handshake was
// refused"). A refused case passes only when its own cause is what both ends saw: a client that
// withholds the untrusted certificate, or a server that refuses for another reason, must not pass
// on the UNAVAILABLE every refusal gives.

// OtherClientCN is the common name of other_client.pem, signed by other_ca.pem
// (harness/engines/certs.py OTHER_CLIENT_CN).
const OtherClientCN = "interop-other-client"

// presentedCN is the common name each channel client_cert presents ("": none).
var presentedCN = map[string]string{"none": "", "client": ClientCN, "other_client": OtherClientCN}

// serverNames are the DNS names of the server certificate (harness/engines/certs.py makes it from
// python_impl/channels.py SERVER_NAMES).
var serverNames = []string{"localhost", "peer.interop.test"}

// nameRefused: the channel asks for a name the server certificate lacks.
func (c Channel) nameRefused() bool {
	return c.ServerName != "" && !slices.Contains(serverNames, c.ServerName)
}

// ---------------------------------------------------------------- client side

// clientHandshakes is what the client's end of one channel's TLS handshakes showed: whether the
// server asked for a certificate (crypto/tls calls GetClientCertificate only then), the one the
// client presented, and the client's own refusal of the server's chain.
type clientHandshakes struct {
	mu        sync.Mutex
	asked     bool
	presented string // its common name ("": an empty Certificate message)
	verifyErr error
}

// certificate is the GetClientCertificate of a channel presenting pair (nil: none). It records
// what crypto/tls sends: exactly what it returns.
func (h *clientHandshakes) certificate(pair *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.asked = true
		if pair == nil {
			h.presented = ""
			return &tls.Certificate{}, nil // crypto/tls then sends an empty Certificate message
		}
		h.presented = leafCN(pair)
		return pair, nil
	}
}

func leafCN(pair *tls.Certificate) string {
	if pair.Leaf != nil {
		return pair.Leaf.Subject.CommonName
	}
	if len(pair.Certificate) == 0 {
		return ""
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "<unparsable certificate>"
	}
	return leaf.Subject.CommonName
}

// recordingClient keeps the client's own handshake errors (a refused server chain).
type recordingClient struct {
	credentials.TransportCredentials
	seen *clientHandshakes
}

func (r recordingClient) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		r.seen.mu.Lock()
		r.seen.verifyErr = err
		r.seen.mu.Unlock()
	}
	return c, info, err
}

func (r recordingClient) Clone() credentials.TransportCredentials {
	return recordingClient{r.TransportCredentials.Clone(), r.seen}
}

// refusalDiffs: the refusal of a normalized refused channel must have its own cause, as the
// client saw it. trust other_ca: the client refused the server's chain for its authority; a tls
// listener trusting ca, or a name the server certificate lacks: for the name (the harness refuses
// a channel with two causes); mtls: the client accepted the server, was asked for a
// certificate and presented exactly the one client_cert names (the server refuses it, or its
// absence: the server's side of it is checked by the harness, harness/run/handshakes.py).
func (h *clientHandshakes) refusalDiffs(c Channel, d *differ) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	got := "no handshake error (the client accepted the server's certificate)"
	if h.verifyErr != nil {
		got = h.verifyErr.Error()
	}
	switch {
	case c.Trust == "other_ca":
		if !errors.As(h.verifyErr, &unknown) {
			d.add("channel.refusal", "the client refuses the server's chain: x509.UnknownAuthorityError", got)
		}
	case c.Listener == ListenerTLS || c.nameRefused():
		if !errors.As(h.verifyErr, &hostname) {
			d.add("channel.refusal", "the client refuses the server's certificate for its name: x509.HostnameError", got)
		}
	default:
		if h.verifyErr != nil {
			d.add("channel.refusal", "the client accepts the server's chain (the server refuses the client)", got)
		}
		want := presentedCN[c.ClientCert]
		wantText := "no certificate presented (an empty Certificate message)"
		if want != "" {
			wantText = quote(want) + " presented"
		}
		switch {
		case !h.asked:
			d.add("channel.client_cert", wantText, "no certificate request reached GetClientCertificate")
		case h.presented != want && h.presented == "":
			d.add("channel.client_cert", wantText, "none presented")
		case h.presented != want:
			d.add("channel.client_cert", wantText, quote(h.presented)+" presented")
		}
	}
}

// ---------------------------------------------------------------- server side

// Refusal is a TLS handshake a listener of the server did not complete, and why.
type Refusal struct {
	Listener string `json:"listener"`
	// Cause: no_certificate (the client sent none), unknown_authority (its certificate does not
	// chain to ca.pem), invalid_certificate (another verify error), client_alert (the client
	// aborted the handshake with Alert: it refused the server), client_closed (it hung up in the
	// middle of the handshake without an alert), other.
	Cause string `json:"cause"`
	Alert string `json:"alert,omitempty"`
	// the client certificate offered, when it was refused: its subject's common name and the
	// SHA-256 of its DER form
	ClientCN     string `json:"client_cn,omitempty"`
	ClientSHA256 string `json:"client_sha256,omitempty"`
	// whether a ClientHello arrived, and the server name it asked for ("": none): what ties a
	// record to its case, where two refused cases refuse alike on one listener
	ClientHello bool   `json:"client_hello"`
	SNI         string `json:"sni"`
	Error       string `json:"error"`
	// how many times it happened since the last take: a refused channel's client reconnects with
	// backoff for as long as its run lasts, refused alike each time
	Count int `json:"count"`
}

// refusalOf classifies a failed server handshake. crypto/tls gives the offered chain with a
// verify error (tls.CertificateVerificationError), a client's alert as a "remote error", and the
// absence of a certificate only as its own error text.
func refusalOf(listener string, err error) Refusal {
	r := Refusal{Listener: listener, Cause: "other", Error: err.Error()}
	var cve *tls.CertificateVerificationError
	var op *net.OpError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &cve):
		r.Cause = "invalid_certificate"
		if errors.As(cve.Err, &unknown) {
			r.Cause = "unknown_authority"
		}
		if len(cve.UnverifiedCertificates) > 0 {
			leaf := cve.UnverifiedCertificates[0]
			sum := sha256.Sum256(leaf.Raw)
			r.ClientCN, r.ClientSHA256 = leaf.Subject.CommonName, hex.EncodeToString(sum[:])
		}
	case errors.As(err, &op) && op.Op == "remote error":
		r.Cause, r.Alert = "client_alert", strings.TrimPrefix(op.Err.Error(), "tls: ")
	case strings.Contains(err.Error(), "client didn't provide a certificate"):
		r.Cause = "no_certificate"
	case errors.Is(err, io.EOF): // the client hung up in the middle of the handshake, without an alert
		r.Cause = "client_closed"
	}
	return r
}

// Refusals keeps the refused handshakes of a server's listeners until the harness takes them
// (a call carrying RefusalsKey, on any listener of the server).
type Refusals struct {
	mu   sync.Mutex
	list []Refusal
	log  io.Writer
}

// RefusalsKey: a call carrying it is answered as usual, plus the trailer RefusalsKey: the JSON list
// of the refused handshakes seen since the last such call (they are then forgotten).
const RefusalsKey = "interop-tls-refusals"

// maxRefusals bounds the kinds of refusal a server keeps (the latest): their trailer must stay
// within what a client accepts (grpcio resets a stream whose trailers pass 16 KiB).
const maxRefusals = 40

// maxErrorLen bounds a kept error's text, for the same reason.
const maxErrorLen = 200

func (rs *Refusals) add(r Refusal) {
	if len(r.Error) > maxErrorLen {
		r.Error = r.Error[:maxErrorLen] + "…"
	}
	rs.mu.Lock()
	kind := r
	if i := slices.IndexFunc(rs.list, func(x Refusal) bool { x.Count = 0; return x == kind }); i >= 0 {
		rs.list[i].Count++ // the same refusal again: kept once, counted
	} else {
		r.Count = 1
		rs.list = append(rs.list, r)
		if len(rs.list) > maxRefusals {
			rs.list = slices.Clone(rs.list[len(rs.list)-maxRefusals:])
		}
	}
	rs.mu.Unlock()
	if rs.log != nil {
		cert, sni := "", " (no ClientHello)"
		if r.ClientSHA256 != "" {
			cert = " (client certificate " + quote(r.ClientCN) + ")"
		}
		if r.ClientHello {
			sni = " (SNI " + quote(r.SNI) + ")"
		}
		fmt.Fprintf(rs.log, "[tls] the %s listener refused a handshake: %s%s%s: %s\n", r.Listener, r.Cause, cert, sni, r.Error)
	}
}

// Take returns the refusals seen so far and forgets them.
func (rs *Refusals) Take() []Refusal {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := rs.list
	rs.list = nil
	if out == nil {
		out = []Refusal{}
	}
	return out
}

// unary answers RefusalsKey (the plaintext listener's interceptor).
func (rs *Refusals) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(RefusalsKey)) > 0 {
		b, _ := json.Marshal(rs.Take())
		_ = grpc.SetTrailer(ctx, metadata.Pairs(RefusalsKey, string(b)))
	}
	return handler(ctx, req)
}

// Recording are a listener's server credentials made of cfg (ServerConfig): each failed handshake
// becomes a Refusal, with the ClientHello's SNI (crypto/tls shows it to GetConfigForClient, with
// the connection it arrived on).
func (rs *Refusals) Recording(listener string, cfg *tls.Config) credentials.TransportCredentials {
	hellos := &sync.Map{} // net.Conn -> the SNI of its ClientHello, until its handshake ends
	cfg = cfg.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		hellos.Store(hello.Conn, hello.ServerName)
		return nil, nil // the listener's own configuration
	}
	return recordingServer{credentials.NewTLS(cfg), listener, rs, hellos}
}

type recordingServer struct {
	credentials.TransportCredentials
	listener string
	store    *Refusals
	hellos   *sync.Map
}

func (r recordingServer) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ServerHandshake(conn)
	sni, hello := r.hellos.LoadAndDelete(conn)
	if err != nil {
		refusal := refusalOf(r.listener, err)
		if hello {
			refusal.ClientHello, refusal.SNI = true, sni.(string)
		}
		r.store.add(refusal)
	}
	return c, info, err
}

func (r recordingServer) Clone() credentials.TransportCredentials {
	return recordingServer{r.TransportCredentials.Clone(), r.listener, r.store, r.hellos}
}
