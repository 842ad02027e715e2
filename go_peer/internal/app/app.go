// Package app is the command line of interop-peer: it parses arguments and hands over to the
// engine (server or client). Run returns the process exit code.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/grpc-interop-harness/go_peer/internal/engine"
	"github.com/grpc-interop-harness/go_peer/internal/probe"
)

const usage = `usage:
  interop-peer serve [--addr HOST:PORT] [--cases FILE] [--stop-on-stdin-eof]
                     [--tls-dir DIR --listen tls=HOST:PORT --listen mtls=HOST:PORT]
                     [--listen keepalive|max_age|restart=HOST:PORT ...]
                                           serve every service (default 0.0.0.0:50051);
                                           prints "LISTENING host:port" once serving; with
                                           --cases the generic engine answers the catalogue's
                                           cases, other calls go to the hand-written services;
                                           each --listen NAME=ADDR serves them on one more
                                           listener: tls (server.pem/key of --tls-dir) or mtls
                                           (also a client certificate signed by its ca.pem),
                                           or a connection policy (keepalive, max_age,
                                           restart: docs/peer-contract.md), shown as
                                           NAME=host:port on the LISTENING line
  interop-peer client --cases FILE|- [--stop-on-stdin-eof]
                                           run the cases of a JSON document (see docs/peer-contract.md);
                                           one JSON result line per case on stdout
  --stop-on-stdin-eof                      stop when stdin reaches its end: the harness holds the
                                           other end, so a harness killed by SIGKILL takes its
                                           peers with it
  interop-peer version                     print the grpc-go and protobuf-go versions
` + probe.Usage

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Run executes one subcommand.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "interop-peer: missing subcommand\n"+usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdin, stdout, stderr)
	case "client":
		return client(ctx, args[1:], stdin, stdout, stderr)
	case "probe-client":
		return probe.Run(ctx, args[1:], stdin, stdout, stderr)
	case "version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "interop-peer version: unexpected argument %q\n%s", args[1], usage)
			return exitUsage
		}
		version(stdout)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "interop-peer: unknown subcommand %q\n%s", args[0], usage)
		return exitUsage
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("interop-peer "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, exitOK
		}
		return false, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n%s", fs.Name(), fs.Arg(0), usage)
		return false, exitUsage
	}
	return true, 0
}

func serve(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	addr := fs.String("addr", "0.0.0.0:50051", "address to listen on (port 0 picks a free port)")
	cases := fs.String("cases", "", "catalogue: a JSON case document (only its cases are read), - for stdin")
	watch := fs.Bool("stop-on-stdin-eof", false, "stop when stdin reaches its end (the harness is gone)")
	tlsDir := fs.String("tls-dir", "", "the certificate folder of the tls and mtls listeners")
	var listens []engine.Listen
	fs.Func("listen", "NAME=HOST:PORT: one more listener (tls, mtls, keepalive, max_age, restart), repeatable", func(v string) error {
		x, err := parseListen(v, listens)
		if err == nil {
			listens = append(listens, x)
		}
		return err
	})
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	ctx, ok := stopOnEOF(ctx, *watch, *cases, stdin, stderr, "serve")
	if !ok {
		return exitUsage
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		fmt.Fprintf(stderr, "interop-peer serve: bad --addr %q: %v (want HOST:PORT)\n%s", *addr, err, usage)
		return exitUsage
	}
	for _, x := range listens {
		if (x.Name == engine.ListenerTLS || x.Name == engine.ListenerMTLS) && *tlsDir == "" {
			fmt.Fprintf(stderr, "interop-peer serve: --listen %s needs --tls-dir DIR (the certificate folder)\n%s", x.Name, usage)
			return exitUsage
		}
	}
	var cat *engine.Catalogue
	if *cases != "" {
		data, err := readInput(*cases, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "interop-peer serve: reading the catalogue: %v\n", err)
			return exitFail
		}
		if cat, err = engine.LoadCatalogue(data); err != nil {
			fmt.Fprintf(stderr, "interop-peer serve: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stderr, "interop-peer: catalogue %s: %d cases\n", *cases, cat.Len())
	}
	all := append([]engine.Listen{{Name: engine.ListenerPlaintext, Addr: *addr}}, listens...)
	if err := engine.Serve(ctx, all, *tlsDir, cat, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "interop-peer serve: %v\n", err)
		return exitFail
	}
	return exitOK
}

func client(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("client", stderr)
	cases := fs.String("cases", "", "JSON case document, - for stdin")
	watch := fs.Bool("stop-on-stdin-eof", false, "stop when stdin reaches its end (the harness is gone)")
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	ctx, ok := stopOnEOF(ctx, *watch, *cases, stdin, stderr, "client")
	if !ok {
		return exitUsage
	}
	if *cases == "" {
		fmt.Fprint(stderr, "interop-peer client: --cases FILE|- is required\n"+usage)
		return exitUsage
	}
	data, err := readInput(*cases, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "interop-peer client: reading cases: %v\n", err)
		return exitFail
	}
	if err := engine.RunClient(ctx, data, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "interop-peer client: %v\n", err)
		return exitFail
	}
	return exitOK
}

// parseListen reads one --listen NAME=HOST:PORT; a name is given once. Only the names the engine
// serves are accepted (the flag package prints the error with the usage).
func parseListen(v string, seen []engine.Listen) (engine.Listen, error) {
	name, addr, ok := strings.Cut(v, "=")
	if !ok {
		return engine.Listen{}, fmt.Errorf("%q is not NAME=HOST:PORT", v)
	}
	if !slices.Contains(engine.ExtraListeners, name) {
		return engine.Listen{}, fmt.Errorf("unknown listener %q (want one of %s)", name, strings.Join(engine.ExtraListeners, ", "))
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return engine.Listen{}, fmt.Errorf("bad address %q for the %s listener: %v (want HOST:PORT)", addr, name, err)
	}
	for _, x := range seen {
		if x.Name == name {
			return engine.Listen{}, fmt.Errorf("the %s listener is given twice", name)
		}
	}
	return engine.Listen{Name: name, Addr: addr}, nil
}

// stopOnEOF returns a context that ends when stdin does, if asked to. The harness keeps stdin's
// other end open for the peer's whole life; when the harness dies (even by SIGKILL) the kernel or
// the Docker engine closes it, and the peer stops instead of waiting for the next run's reaper.
func stopOnEOF(ctx context.Context, watch bool, cases string, stdin io.Reader, stderr io.Writer, cmd string) (context.Context, bool) {
	if !watch {
		return ctx, true
	}
	if cases == "-" {
		fmt.Fprintf(stderr, "interop-peer %s: --stop-on-stdin-eof needs stdin, so --cases cannot be -\n%s", cmd, usage)
		return ctx, false
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		fmt.Fprintf(stderr, "interop-peer %s: stdin closed (the harness is gone): stopping\n", cmd)
		cancel()
	}()
	return ctx, true
}

// readInput reads a named file, or stdin for "-".
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

func version(stdout io.Writer) {
	grpcV, protoV, goV := "unknown", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goV = bi.GoVersion
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			switch d.Path {
			case "google.golang.org/grpc":
				grpcV = v
			case "google.golang.org/protobuf":
				protoV = v
			}
		}
	}
	fmt.Fprintf(stdout, "grpc-go %s\nprotobuf-go %s\ngo %s\n", grpcV, protoV, goV)
}
