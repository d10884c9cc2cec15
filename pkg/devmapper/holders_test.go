package devmapper

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestParseMountPoints(t *testing.T) {
	const info = `22 1 98:0 / / rw,relatime shared:1 - ext4 /dev/ubda rw
36 22 253:4 / /var/lib/kubelet/plugins/csi-thin/globalmount rw,relatime shared:9 - ext4 /dev/dm-4 rw
37 22 253:4 /sub /mnt/with\040space\134x rw - ext4 /dev/dm-4 rw
38 22 253:40 / /other rw - ext4 /dev/dm-40 rw
short line
`
	got := parseMountPoints([]byte(info), Dev{Major: 253, Minor: 4})
	want := []string{"/var/lib/kubelet/plugins/csi-thin/globalmount", `/mnt/with space\x`}
	if !slices.Equal(got, want) {
		t.Fatalf("mount points %q, want %q", got, want)
	}
	if got := parseMountPoints([]byte(info), Dev{Major: 7, Minor: 0}); got != nil {
		t.Fatalf("mount points of an unmounted device: %q", got)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:         "/plain",
		`/a\040b`:        "/a b",
		`/tab\011nl\012`: "/tab\tnl\n",
		`/trailing\04`:   `/trailing\04`,
		`/not\999octal`:  `/not\999octal`,
		`/back\134slash`: `/back\slash`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescape %q: %q, want %q", in, got, want)
		}
	}
}

func TestHolders(t *testing.T) {
	sys, _ := fakeBlockRoots(t)
	d := Dev{Major: 253, Minor: 4}
	writeFakeFile(t, sys, "dev/block/253:4/holders/dm-9/dm/name", "pool-vol-1\n")
	writeFakeFile(t, sys, "dev/block/253:4/holders/loop3/size", "8\n")
	old := mountInfoPath
	mountInfoPath = writeFakeFile(t, t.TempDir(), "mountinfo", "36 22 253:4 / /staging rw - ext4 /dev/dm-4 rw\n")
	t.Cleanup(func() { mountInfoPath = old })

	got, err := Holders(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mounted at /staging", "held by dm-9 (dm device pool-vol-1)", "held by loop3"}
	if !slices.Equal(got, want) {
		t.Fatalf("holders %q, want %q", got, want)
	}
	// A device with neither: nothing, and no error.
	mountInfoPath = filepath.Join(t.TempDir(), "missing")
	if _, err := Holders(Dev{Major: 1, Minor: 1}); err == nil {
		t.Fatal("no error for an unreadable mountinfo")
	}
	mountInfoPath = writeFakeFile(t, t.TempDir(), "mountinfo", "")
	if got, err := Holders(Dev{Major: 1, Minor: 1}); err != nil || got != nil {
		t.Fatalf("holders of an idle device: %q %v", got, err)
	}
}
