package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The names certificate files carry (docs/peer-contract.md, "Certificates"), as
// harness/engines/certs.py writes them for a run: the tests make the same set, never a committed key.
const (
	ClientCN      = "interop-client"
	OtherClientCN = "interop-other-client"
	OverrideName  = "peer.interop.test"
)

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// WriteCerts writes a fresh certificate folder into dir: ca.pem signs server.pem (SANs localhost,
// OverrideName, 127.0.0.1, ::1) and client.pem (CN ClientCN); other_ca.pem signs other_client.pem
// (CN OtherClientCN). Keys are P-256, PKCS#8.
func WriteCerts(t testing.TB, dir string) {
	t.Helper()
	ca := newAuthority(t, "test CA")
	other := newAuthority(t, "other test CA")
	write(t, dir, "ca", ca.cert, nil)
	write(t, dir, "other_ca", other.cert, nil)
	leaf(t, dir, "server", ca, "interop-server", true)
	leaf(t, dir, "client", ca, ClientCN, false)
	leaf(t, dir, "other_client", other, OtherClientCN, false)
}

func template(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"grpc-interop-harness"}, CommonName: cn},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newAuthority(t testing.TB, cn string) authority {
	t.Helper()
	key := newKey(t)
	tpl := template(t, cn)
	tpl.IsCA, tpl.BasicConstraintsValid = true, true
	tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return authority{cert, key}
}

func leaf(t testing.TB, dir, name string, ca authority, cn string, server bool) {
	t.Helper()
	key := newKey(t)
	tpl := template(t, cn)
	tpl.KeyUsage = x509.KeyUsageDigitalSignature
	if server {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.DNSNames = []string{"localhost", OverrideName}
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, name, cert, key)
}

// write writes NAME.pem and, given a key, NAME.key.
func write(t testing.TB, dir, name string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	files := map[string][]byte{name + ".pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
	if key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		files[name+".key"] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for file, data := range files {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
