package forward

import (
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/csi-thin/csi-thin/internal/testcerts"
)

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	f := testcerts.NewCA(t, "ca").Issue(t, dir, "x", x509.ExtKeyUsageServerAuth)
	testcerts.Write(t, filepath.Join(dir, "empty"), nil)
	for name, bad := range map[string]TLSFiles{
		"no such cert": {Cert: filepath.Join(dir, "nope"), Key: f.Key, CA: f.CA},
		"no CA":        {Cert: f.Cert, Key: f.Key, CA: filepath.Join(dir, "nope")},
		"empty CA":     {Cert: f.Cert, Key: f.Key, CA: filepath.Join(dir, "empty")},
	} {
		if _, err := ServerTLS(bad, "c"); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := ClientTLS(bad, "c"); err == nil {
			t.Errorf("%s: accepted by ClientTLS", name)
		}
	}
	if _, err := ServerTLS(TLSFiles(f), "c"); err != nil {
		t.Errorf("good files refused: %v", err)
	}
}
