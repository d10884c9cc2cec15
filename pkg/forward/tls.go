package forward

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
)

// TLSFiles are the PEM files of one end of the nodes' mutual TLS: its own
// certificate and key, and the CA that signed the other end's.
type TLSFiles struct {
	Cert, Key, CA string
}

func (f TLSFiles) load() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return cert, nil, fmt.Errorf("load the TLS certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return cert, nil, fmt.Errorf("read the TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return cert, nil, fmt.Errorf("the TLS CA %s holds no PEM certificate", f.CA)
	}
	return cert, pool, nil
}

// ServerTLS is a node's TLS: it presents its certificate and takes only
// clients whose certificate the CA signed and that name clientName (as a
// DNS name or the common name), so that a node's own certificate, signed
// by the same CA, does not open the other nodes.
func ServerTLS(f TLSFiles, clientName string) (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("no client certificate")
			}
			c := cs.PeerCertificates[0]
			if c.Subject.CommonName != clientName && !slices.Contains(c.DNSNames, clientName) {
				return fmt.Errorf("client certificate of %q, %v does not name %q", c.Subject.CommonName, c.DNSNames, clientName)
			}
			return nil
		},
	}, nil
}

// ClientTLS is the forwarder's TLS: it presents its certificate and takes
// only nodes whose certificate the CA signed for serverName.
func ClientTLS(f TLSFiles, serverName string) (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}
