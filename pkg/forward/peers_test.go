package forward

import (
	"context"
	"strings"
	"testing"
)

func TestResolvePeers(t *testing.T) {
	for _, bad := range []string{"", "host", "host:", ":9443", "a:1,b"} {
		if _, err := ResolvePeers(bad); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("%q: %v, want an error asking for HOST:PORT", bad, err)
		}
	}
	p, err := ResolvePeers("127.0.0.1:2, 127.0.0.1:1,127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p(context.Background())
	if err != nil || strings.Join(got, " ") != "127.0.0.1:1 127.0.0.1:2" {
		t.Fatalf("got %v %v", got, err)
	}
}
