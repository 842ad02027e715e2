package engine

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
)

// Each refused channel passes only on its own cause, as the client saw it: crafted records of a
// client that presented the wrong certificate, none, or refused the server for another reason fail.
func TestRefusalDiffsNeedTheirOwnCause(t *testing.T) {
	unknown := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	hostname := &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "x"}}
	untrusted := Channel{Listener: ListenerMTLS, Trust: "ca", ClientCert: "other_client", Refused: true}
	noCert := Channel{Listener: ListenerMTLS, Trust: "ca", ClientCert: "none", Refused: true}
	wrongCA := Channel{Listener: ListenerTLS, Trust: "other_ca", ClientCert: "none", Refused: true}
	mismatch := Channel{Listener: ListenerTLS, Trust: "ca", ClientCert: "none", ServerName: "x", Refused: true}
	mtlsName := Channel{Listener: ListenerMTLS, Trust: "ca", ClientCert: "client", ServerName: "x", Refused: true}
	for _, tc := range []struct {
		name string
		c    Channel
		seen *clientHandshakes
		want []string // diff paths
	}{
		{"untrusted presented", untrusted, &clientHandshakes{asked: true, presented: OtherClientCN}, nil},
		{"untrusted withheld", untrusted, &clientHandshakes{asked: true}, []string{"channel.client_cert"}},
		{"untrusted never asked", untrusted, &clientHandshakes{}, []string{"channel.client_cert"}},
		{"untrusted: the trusted one", untrusted, &clientHandshakes{asked: true, presented: ClientCN}, []string{"channel.client_cert"}},
		{"untrusted: refused the server", untrusted, &clientHandshakes{verifyErr: unknown}, []string{"channel.refusal", "channel.client_cert"}},
		{"no cert", noCert, &clientHandshakes{asked: true}, nil},
		{"no cert: one presented", noCert, &clientHandshakes{asked: true, presented: OtherClientCN}, []string{"channel.client_cert"}},
		{"wrong ca", wrongCA, &clientHandshakes{verifyErr: unknown}, nil},
		{"wrong ca: wrapped", wrongCA, &clientHandshakes{verifyErr: fmt.Errorf("handshake: %w", unknown)}, nil},
		{"wrong ca: another error", wrongCA, &clientHandshakes{verifyErr: errors.New("broken pipe")}, []string{"channel.refusal"}},
		{"wrong ca: accepted", wrongCA, &clientHandshakes{}, []string{"channel.refusal"}},
		{"name", mismatch, &clientHandshakes{verifyErr: hostname}, nil},
		{"name: the authority instead", mismatch, &clientHandshakes{verifyErr: unknown}, []string{"channel.refusal"}},
		// a case file's mtls channel whose only cause is the name
		{"mtls name", mtlsName, &clientHandshakes{verifyErr: hostname}, nil},
		{"mtls name: accepted", mtlsName, &clientHandshakes{asked: true, presented: ClientCN}, []string{"channel.refusal"}},
	} {
		d := &differ{}
		tc.seen.refusalDiffs(tc.c, d)
		if !slices.Equal(diffPaths(d.diffs), tc.want) {
			t.Errorf("%s: diffs %+v, want paths %v", tc.name, d.diffs, tc.want)
		}
	}
}

// A failed server handshake is classified from crypto/tls's own errors.
func TestRefusalOf(t *testing.T) {
	leaf := &x509.Certificate{Raw: []byte("der"), Subject: pkix.Name{CommonName: OtherClientCN}}
	for _, tc := range []struct {
		err  error
		want Refusal
	}{
		// the SHA-256 of the bytes "der"
		{&tls.CertificateVerificationError{UnverifiedCertificates: []*x509.Certificate{leaf}, Err: x509.UnknownAuthorityError{}},
			Refusal{Cause: "unknown_authority", ClientCN: OtherClientCN,
				ClientSHA256: "5050d80d22ecd471ea55df7034042c1e041341ff4066e7f6ff38e20b720df8ea"}},
		{&tls.CertificateVerificationError{UnverifiedCertificates: []*x509.Certificate{leaf}, Err: x509.CertificateInvalidError{Reason: x509.Expired}},
			Refusal{Cause: "invalid_certificate", ClientCN: OtherClientCN,
				ClientSHA256: "5050d80d22ecd471ea55df7034042c1e041341ff4066e7f6ff38e20b720df8ea"}},
		{errors.New("tls: client didn't provide a certificate"), Refusal{Cause: "no_certificate"}},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, Refusal{Cause: "client_alert", Alert: "bad certificate"}},
		{fmt.Errorf("handshake: %w", io.EOF), Refusal{Cause: "client_closed"}},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, Refusal{Cause: "other"}},
	} {
		got := refusalOf("mtls", tc.err)
		tc.want.Listener, tc.want.Error = "mtls", tc.err.Error()
		if got != tc.want {
			t.Errorf("%v: %+v, want %+v", tc.err, got, tc.want)
		}
	}
}

// A refused channel's client reconnects with backoff for as long as its run lasts: the same
// refusal again and again. It is kept once, with a count, so the trailer that carries the records
// stays within what a client accepts (grpcio resets a stream whose trailers pass 16 KiB).
func TestRefusalsKeepARepeatOnce(t *testing.T) {
	rs := &Refusals{}
	noCert := Refusal{Listener: "mtls", Cause: "no_certificate", ClientHello: true, Error: "tls: client didn't provide a certificate"}
	wrongCA := Refusal{Listener: "tls", Cause: "client_alert", Alert: "bad certificate", ClientHello: true, Error: "remote error: tls: bad certificate"}
	for range 500 {
		rs.add(noCert)
		rs.add(wrongCA)
	}
	rs.add(Refusal{Listener: "tls", Cause: "client_closed", Error: "EOF"})
	got := rs.Take()
	noCert.Count, wrongCA.Count = 500, 500
	want := []Refusal{noCert, wrongCA, {Listener: "tls", Cause: "client_closed", Error: "EOF", Count: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("records %+v, want %+v", got, want)
	}
	for i := range 3 * maxRefusals { // as many kinds as a listener could be shown: the latest are kept
		rs.add(Refusal{Listener: "tls", Cause: "other", Error: fmt.Sprintf("kind %d %s", i, strings.Repeat("x", 200))})
	}
	b, _ := json.Marshal(rs.Take())
	if len(b) > 12<<10 {
		t.Errorf("the records take %d bytes, more than a trailer may carry", len(b))
	}
}
