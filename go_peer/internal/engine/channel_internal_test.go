package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// tlsPeer is the peer of a TLS connection with the given state.
func tlsPeer(st tls.ConnectionState) *peer.Peer {
	return &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, AuthInfo: credentials.TLSInfo{State: st}}
}

func verifiedBy(cn string) [][]*x509.Certificate {
	return [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}
}

func diffPaths(ds []Diff) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Path
	}
	return out
}

// What the server reads of a connection, against what the channel says. grpc-go's own client
// always negotiates h2, so a connection without it (ALPN) is made up here.
func TestCheckChannel(t *testing.T) {
	mtls := Channel{Listener: ListenerMTLS, Trust: "ca", ClientCert: "client"}
	good := tls.ConnectionState{NegotiatedProtocol: "h2", VerifiedChains: verifiedBy(ClientCN)}
	for _, tc := range []struct {
		name string
		ch   Channel
		peer *peer.Peer
		want []string
	}{
		{"mtls as said", mtls, tlsPeer(good), nil},
		{"no alpn", mtls, tlsPeer(tls.ConnectionState{VerifiedChains: verifiedBy(ClientCN)}), []string{"server.channel.alpn"}},
		{"http/1.1", mtls, tlsPeer(tls.ConnectionState{NegotiatedProtocol: "http/1.1", VerifiedChains: verifiedBy(ClientCN)}), []string{"server.channel.alpn"}},
		{"other cn", mtls, tlsPeer(tls.ConnectionState{NegotiatedProtocol: "h2", VerifiedChains: verifiedBy("someone")}), []string{"server.channel.client_cn"}},
		{"unverified certificate", mtls, tlsPeer(tls.ConnectionState{NegotiatedProtocol: "h2",
			PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: ClientCN}}}}), []string{"server.channel.client_cn"}},
		{"sni sent, none said", mtls, tlsPeer(tls.ConnectionState{NegotiatedProtocol: "h2", VerifiedChains: verifiedBy(ClientCN), ServerName: "x"}),
			[]string{"server.channel.sni"}},
		{"plaintext said, tls came", Channel{Listener: ListenerPlaintext}, tlsPeer(good), []string{"server.channel.transport"}},
		{"plaintext", Channel{Listener: ListenerPlaintext}, &peer.Peer{}, nil},
		{"no peer at all", mtls, nil, []string{"server.channel.transport", "server.channel.client_cn", "server.channel.alpn"}},
	} {
		ctx := context.Background()
		if tc.peer != nil {
			ctx = peer.NewContext(ctx, tc.peer)
		}
		d := &differ{}
		checkChannel(ctx, tc.ch, d)
		if got := diffPaths(d.diffs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: diffs %+v, want %v", tc.name, d.diffs, tc.want)
		}
	}
}

// The client checks the ALPN of every TLS call that connected, and that a refused channel did
// not connect.
func TestClientChannelChecks(t *testing.T) {
	p, err := prepare(&Call{Method: "/a.B/C", Streaming: ModeUnary, Raw: true, Requests: []json.RawMessage{json.RawMessage(`{}`)},
		Expect: Expect{Responses: &[]json.RawMessage{}}})
	if err != nil {
		t.Fatal(err)
	}
	ok := status.New(codes.OK, "")
	p.tls = true
	for _, tc := range []struct {
		name    string
		refused bool
		peer    *peer.Peer
		want    []string
	}{
		{"h2", false, tlsPeer(tls.ConnectionState{NegotiatedProtocol: "h2"}), nil},
		{"no alpn", false, tlsPeer(tls.ConnectionState{}), []string{"channel.alpn"}},
		{"never connected", false, &peer.Peer{}, nil},
		{"refused, never connected", true, &peer.Peer{}, nil},
		{"refused, connected", true, tlsPeer(tls.ConnectionState{NegotiatedProtocol: "h2"}), []string{"channel.refused"}},
	} {
		p.refused = tc.refused
		if got := diffPaths(check(0, p, &outcome{status: ok, peer: tc.peer})); !slices.Equal(got, tc.want) {
			t.Errorf("%s: diffs %v, want %v", tc.name, got, tc.want)
		}
	}
}
