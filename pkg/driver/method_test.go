package driver

import "testing"

func TestMethodName(t *testing.T) {
	cases := []struct{ full, want string }{
		{"/csi.v1.Node/NodeStageVolume", "NodeStageVolume"},
		{"/csi.v1.Controller/CreateVolume", "CreateVolume"},
		{"/csi.v1.Identity/Probe", "Probe"},
		{"Probe", "Probe"},
		{"/csi.v1.Node/", ""},
		{"", ""},
	}
	for _, c := range cases {
		if got := methodName(c.full); got != c.want {
			t.Errorf("methodName(%q) = %q, want %q", c.full, got, c.want)
		}
	}
}
