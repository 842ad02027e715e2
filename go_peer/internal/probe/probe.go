// Package probe is the Go client flavour of `grpc-interop probe` (docs/probe-clients.md): it reads probe
// calls as JSON lines, makes each on one connection to --target with grpc-go, and writes one
// outcome line per call, in order. Requests and responses are raw bytes, so it sends exactly what
// the Python flavours send; it decodes the responses with dynamicpb to compare with Python's decode.
package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/oauth"
	"google.golang.org/grpc/metadata"
)

// Usage is the probe client's command line, as interop-peer and probe-client print it.
const Usage = `  [interop-peer] probe-client --target HOST:PORT [--tls [--ca FILE] [--cert FILE --key FILE]]
               [--authority NAME] [--token TOKEN] [--descriptors FILE]
                                           the Go client of grpc-interop probe: one probe call per
                                           stdin line (JSON), one outcome line per call on stdout,
                                           in order, until stdin closes; it connects to --target
                                           only (docs/probe-clients.md)
`

// Options are the connection's flags, the same for every client flavour.
type Options struct {
	Target, CA, Cert, Key, Authority, Token, Descriptors string
	TLS                                                  bool
}

// maxLine bounds one probe call line (its requests are base64 in it).
const maxLine = 64 << 20

// Run parses the flags, then answers probe calls until stdin ends. Exit codes: 0 done, 1 the client
// could not start (bad certificate, bad descriptors), 2 usage.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, "usage:\n"+Usage) }
	var o Options
	fs.StringVar(&o.Target, "target", "", "HOST:PORT of the server under probe")
	fs.BoolVar(&o.TLS, "tls", false, "connect with TLS")
	fs.StringVar(&o.CA, "ca", "", "PEM roots to verify the server with (default with --tls: the system's)")
	fs.StringVar(&o.Cert, "cert", "", "client certificate (PEM) for mTLS, with --key")
	fs.StringVar(&o.Key, "key", "", "the client certificate's private key (PEM)")
	fs.StringVar(&o.Authority, "authority", "", ":authority of every call, and the name the server certificate must carry")
	fs.StringVar(&o.Token, "token", "", "bearer token sent with every call")
	fs.StringVar(&o.Descriptors, "descriptors", "", "binary FileDescriptorSet: decode the responses (outcome.decoded)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || o.Target == "" {
		fmt.Fprintf(stderr, "probe-client: --target HOST:PORT is required and no argument is taken\nusage:\n%s", Usage)
		return 2
	}
	if _, _, err := net.SplitHostPort(o.Target); err != nil {
		fmt.Fprintf(stderr, "probe-client: bad --target %q: %v (want HOST:PORT)\nusage:\n%s", o.Target, err, Usage)
		return 2
	}
	if (o.Cert == "") != (o.Key == "") || (!o.TLS && (o.CA != "" || o.Cert != "")) {
		fmt.Fprintf(stderr, "probe-client: --cert and --key go together, and --ca/--cert/--key need --tls\nusage:\n%s", Usage)
		return 2
	}
	if err := Serve(ctx, o, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "probe-client: %v\n", err)
		return 1
	}
	return 0
}

// Serve connects and answers probe calls from in until it ends (or ctx does).
func Serve(ctx context.Context, o Options, in io.Reader, out io.Writer) error {
	InstallCodec()
	var desc *Descriptors
	if o.Descriptors != "" {
		var err error
		if desc, err = LoadDescriptors(o.Descriptors); err != nil {
			return err
		}
	}
	client, err := Dial(o)
	if err != nil {
		return err
	}
	defer client.Close()
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 1<<20), maxLine)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for lines.Scan() {
		if len(lines.Bytes()) == 0 {
			continue
		}
		var c Call
		var o *Outcome
		if err := json.Unmarshal(lines.Bytes(), &c); err != nil {
			msg := fmt.Sprintf("the probe call is not valid JSON for the contract: %v", err)
			o = &Outcome{ID: c.ID, Code: NotMade, Error: &msg, Responses: [][]byte{}, Headers: map[string][]string{},
				Trailers: map[string][]string{}}
		} else {
			o = invoke(ctx, client.conn, &c, client.opts, client.md)
			o.Decoded = desc.decode(c.Method, o.Responses)
		}
		if err := enc.Encode(o); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return lines.Err()
}

// Client is the one connection every call uses, with what each call carries besides its own
// metadata (the token).
type Client struct {
	conn *grpc.ClientConn
	opts []grpc.CallOption
	md   metadata.MD
}

// Close closes the connection.
func (c *Client) Close() { _ = c.conn.Close() }

// Dial makes the client of --target (grpc-go connects lazily, at the first call). grpc-go's oauth
// credentials refuse to send a token without transport security, as they should; over plaintext
// the token goes as plain `authorization` metadata, as the Python flavours send it.
func Dial(o Options) (*Client, error) {
	dialOpts := []grpc.DialOption{grpc.WithNoProxy()}
	c := &Client{md: metadata.MD{}}
	if o.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CA != "" {
			b, err := os.ReadFile(o.CA)
			if err != nil {
				return nil, fmt.Errorf("reading --ca: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("--ca %s holds no PEM certificate", o.CA)
			}
		}
		if o.Cert != "" {
			pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
			if err != nil {
				return nil, fmt.Errorf("reading --cert %s and --key %s: %v", o.Cert, o.Key, err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if o.Token != "" {
			c.opts = append(c.opts, grpc.PerRPCCredentials(oauth.TokenSource{
				TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: o.Token})}))
		}
	} else {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if o.Token != "" {
			c.md.Set("authorization", "Bearer "+o.Token)
		}
	}
	if o.Authority != "" { // also the TLS name grpc-go verifies (and sends as SNI)
		dialOpts = append(dialOpts, grpc.WithAuthority(o.Authority))
	}
	conn, err := grpc.NewClient(o.Target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("cannot make a client for %s: %v", o.Target, err)
	}
	c.conn = conn
	return c, nil
}
