package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/oauth"
	"google.golang.org/grpc/peer"
)

// Channels (docs/peer-contract.md, "Channels: TLS, mTLS and call credentials"): a case may name the
// listener it connects to and how the client secures the connection. The certificates are files
// of one folder with fixed names, made per session by the harness.

// Listener names. plaintext is the --addr listener; the others are added with --listen NAME=ADDR.
const (
	ListenerPlaintext = "plaintext"
	ListenerTLS       = "tls"
	ListenerMTLS      = "mtls"
)

// ExtraListeners are the names --listen accepts: tls and mtls, then the connection-policy ones
// (connection.go), which the LISTENING line prints last.
var ExtraListeners = append([]string{ListenerTLS, ListenerMTLS}, ListenerNames()...)

// CA files of the certificate folder (harness/engines/certs.py writes them); a leaf NAME is the
// pair NAME.pem and NAME.key.
const (
	fileCA      = "ca.pem"
	fileOtherCA = "other_ca.pem"
)

// ClientCN is the common name of the client certificate signed by ca.pem: what an mtls server
// sees from a client presenting client_cert "client".
const ClientCN = "interop-client"

// h2 is the ALPN protocol every TLS connection of gRPC must negotiate.
const h2 = "h2"

// Channel is a case's optional "channel": every call of the case uses it.
type Channel struct {
	Listener   string `json:"listener"`    // plaintext (default), tls, mtls
	Trust      string `json:"trust"`       // ca (default), other_ca
	ClientCert string `json:"client_cert"` // none, client, other_client (default: client on mtls, else none)
	ServerName string `json:"server_name"` // TLS name override (verified and sent as SNI)
	Token      string `json:"token"`       // bearer token sent through grpc-go's oauth call credentials
	Refused    bool   `json:"refused"`     // the handshake must fail: no server sees the call
	// a name: the channel's connection is its own (key() writes it), so a call that breaks its
	// connection (grpcio refusing a grpc-status past 2^31-2) spoils no other case's calls
	Isolated string `json:"isolated,omitempty"`
	// the client's keepalive on this connection (connection.go)
	KeepaliveTimeMS             *int64 `json:"keepalive_time_ms,omitempty"`
	KeepaliveTimeoutMS          *int64 `json:"keepalive_timeout_ms,omitempty"`
	KeepalivePermitWithoutCalls bool   `json:"keepalive_permit_without_calls,omitempty"`
}

// normalized returns the channel with its defaults written in, or an error naming the bad key. A
// TLS-only key on the plaintext listener is an error: it would be silently ignored, and a case
// that cannot fail for the reason it names is worse than none.
func (c Channel) normalized() (Channel, error) {
	if c.Listener == "" {
		c.Listener = ListenerPlaintext
	}
	if c.Listener != ListenerPlaintext && !slices.Contains(ExtraListeners, c.Listener) {
		return c, fmt.Errorf("channel.listener %q is not plaintext or one of %s", c.Listener, strings.Join(ExtraListeners, ", "))
	}
	secure := c.secure() // tls, mtls; the connection-policy listeners are plaintext
	if !secure && (c.Trust != "" || c.ClientCert != "" || c.ServerName != "") {
		return c, fmt.Errorf("channel.trust, client_cert and server_name need a tls or mtls listener, not %s", c.Listener)
	}
	if !secure {
		return c, nil
	}
	switch c.Trust {
	case "":
		c.Trust = "ca"
	case "ca", "other_ca":
	default:
		return c, fmt.Errorf("channel.trust %q is not ca or other_ca", c.Trust)
	}
	switch c.ClientCert {
	case "":
		c.ClientCert = "none"
		if c.Listener == ListenerMTLS {
			c.ClientCert = "client"
		}
	case "none", "client", "other_client":
	default:
		return c, fmt.Errorf("channel.client_cert %q is not none, client or other_client", c.ClientCert)
	}
	return c, nil
}

// secure: the channel's listener speaks TLS.
func (c Channel) secure() bool { return c.Listener == ListenerTLS || c.Listener == ListenerMTLS }

// readPool reads one CA file of the folder into a pool of its own.
func readPool(dir, name string) (*x509.CertPool, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the CA %s: %v", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// readPair reads <name>.pem and <name>.key of the folder.
func readPair(dir, name string) (tls.Certificate, error) {
	cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return pair, fmt.Errorf("reading the certificate %s and its key %s: %v", cert, key, err)
	}
	return pair, nil
}

// ServerConfig is the TLS configuration of a tls or mtls listener: the server certificate of dir;
// on mtls a client certificate is required and verified against ca.pem. grpc-go's credentials
// add "h2" to NextProtos themselves, so ALPN is the library's.
func ServerConfig(dir, listener string) (*tls.Config, error) {
	pair, err := readPair(dir, "server")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	switch listener {
	case ListenerTLS:
	case ListenerMTLS:
		if cfg.ClientCAs, err = readPool(dir, fileCA); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("listener %q has no TLS credentials (tls, mtls)", listener)
	}
	return cfg, nil
}

// clientCredentials are the transport credentials of a normalized secure channel: the root it
// trusts, the certificate it presents and the name it verifies (and sends as SNI; empty: the
// target's host, which crypto/tls does not send as SNI when it is an IP address). What its
// handshakes show is recorded in seen (handshake.go).
func clientCredentials(dir string, c Channel, seen *clientHandshakes) (credentials.TransportCredentials, error) {
	if dir == "" {
		return nil, fmt.Errorf("channel.listener %s needs the certificate folder, but the client input has no certs", c.Listener)
	}
	root := fileCA
	if c.Trust == "other_ca" {
		root = fileOtherCA
	}
	pool, err := readPool(dir, root)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	var pair *tls.Certificate
	if c.ClientCert != "none" {
		p, err := readPair(dir, c.ClientCert)
		if err != nil {
			return nil, err
		}
		pair = &p
	}
	if withholdUnlistedCert && pair != nil { // a test's mutant: the fault GetClientCertificate fixes
		cfg.Certificates = []tls.Certificate{*pair}
	} else {
		// Presented whatever the server asks for: with Certificates, crypto/tls withholds a
		// certificate the server's CA list does not cover (grpc-go's server sends one), and
		// untrusted_client_cert would test nothing but no_client_cert. It also records that the
		// server asked, and what was presented.
		cfg.GetClientCertificate = seen.certificate(pair)
	}
	return recordingClient{credentials.NewTLS(cfg), seen}, nil
}

// withholdUnlistedCert is set by tests only (export_test.go): the client then gives crypto/tls its
// certificate as Certificates, which withholds one the server's CA list does not cover.
var withholdUnlistedCert = false

// checkChannel compares the connection a catalogue call arrived on with what its case's channel
// (normalized) says: a client that quietly used another listener, another certificate or no SNI
// fails here, on the server side.
func checkChannel(ctx context.Context, c Channel, d *differ) {
	transport, cn, sni, alpn := "insecure", "", "", ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			transport = "tls"
			st := info.State
			// only a certificate the server verified counts (a tls listener asks for none)
			if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
				cn = st.VerifiedChains[0][0].Subject.CommonName
			}
			sni, alpn = st.ServerName, st.NegotiatedProtocol
		}
	}
	want := "insecure"
	if c.secure() {
		want = "tls"
	}
	if transport != want {
		d.add("server.channel.transport", want, transport)
	}
	if !c.secure() {
		return
	}
	wantCN := ""
	if c.Listener == ListenerMTLS && c.ClientCert == "client" {
		wantCN = ClientCN
	}
	if cn != wantCN {
		d.add("server.channel.client_cn", quote(wantCN), quote(cn))
	}
	if sni != c.ServerName {
		d.add("server.channel.sni", quote(c.ServerName), quote(sni))
	}
	if alpn != h2 {
		d.add("server.channel.alpn", quote(h2), quote(alpn))
	}
}

// tlsALPN is the protocol a finished call's TLS connection negotiated; ok is false when the call
// had no TLS connection (plaintext, or it never got one: a refused handshake).
func tlsALPN(p *peer.Peer) (string, bool) {
	if p == nil {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	return info.State.NegotiatedProtocol, true
}

// tokenCredentials send a bearer token with every call through grpc-go's oauth call credentials
// (they refuse to send it over a connection without transport security, as they should).
func tokenCredentials(token string) grpc.CallOption {
	return grpc.PerRPCCredentials(oauth.TokenSource{TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})})
}

// Channels keeps the connections of one client run: the plaintext one of Input.Target for the
// cases without a channel, and one more per distinct channel (its canonical JSON), dialled when
// the first case that names it runs. grpc-go dials lazily, so a refused handshake shows in that
// case's calls (UNAVAILABLE), not here.
type Channels struct {
	plain   grpc.ClientConnInterface
	targets map[string]string
	certs   string
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	seen    map[string]*clientHandshakes // what each secure channel's handshakes showed
}

// NewChannels starts the connections of a run on its plaintext connection (to in.Target); the
// input's targets and certs serve the channels (they may be absent when no case names one).
func NewChannels(plain grpc.ClientConnInterface, in *Input) *Channels {
	targets := map[string]string{ListenerPlaintext: in.Target}
	for name, addr := range in.Targets {
		targets[name] = addr
	}
	return &Channels{plain: plain, targets: targets, certs: in.Certs, conns: map[string]*grpc.ClientConn{},
		seen: map[string]*clientHandshakes{}}
}

// conn returns the connection of a normalized channel (nil: the plaintext connection).
func (cs *Channels) conn(c *Channel) (grpc.ClientConnInterface, error) {
	if c == nil {
		return cs.plain, nil
	}
	key := c.key()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if conn, ok := cs.conns[key]; ok {
		return conn, nil
	}
	target := cs.targets[c.Listener]
	if target == "" {
		return nil, fmt.Errorf("channel.listener %s has no address in the client input's targets", c.Listener)
	}
	creds := insecureCredentials()
	if c.secure() {
		var err error
		seen := &clientHandshakes{}
		if creds, err = clientCredentials(cs.certs, *c, seen); err != nil {
			return nil, err
		}
		cs.seen[key] = seen
	}
	conn, err := dial(target, creds, c.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %s (%s): %v", target, c.Listener, err)
	}
	cs.conns[key] = conn
	return conn, nil
}

// key: one connection per meaning (every key written, defaults filled in).
func (c Channel) key() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// refusalDiffs checks why a refused secure channel (normalized) was refused, from the client's end.
func (cs *Channels) refusalDiffs(c Channel, d *differ) {
	cs.mu.Lock()
	seen := cs.seen[c.key()]
	cs.mu.Unlock()
	if seen == nil {
		seen = &clientHandshakes{}
	}
	seen.refusalDiffs(c, d)
}

// Close closes every channel's connection (not the plaintext one, which the caller owns).
func (cs *Channels) Close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, conn := range cs.conns {
		_ = conn.Close()
	}
	cs.conns = map[string]*grpc.ClientConn{}
}
