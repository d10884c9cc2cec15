package thinmeta_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// pool is what a test puts in metadata: thin devices, each a map of
// virtual block to data block.
type pool map[uint32]map[uint64]uint64

// thinTool returns the path of a thin-provisioning-tools program, or
// skips the test.
func thinTool(t testing.TB, name string) string {
	t.Helper()
	if os.Getenv("KERNEL_SCRATCH_DIR") != "" {
		// The kernel harness runs the package for its kernel test.
		t.Skipf("a host test: in the test kernel the temporary directory is a tmpfs, where %s cannot open its files (O_DIRECT); `make test` runs it", name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Skipf("needs %s from thin-provisioning-tools (apt-get install thin-provisioning-tools): %v", name, err)
	}
	return p
}

// writeXML writes p in the XML thin_dump prints and thin_restore reads:
// runs of consecutive virtual and data blocks as range mappings.
func (p pool) writeXML(w io.Writer) {
	nrData := uint64(1)
	for _, m := range p {
		for _, d := range m {
			nrData = max(nrData, d+1)
		}
	}
	fmt.Fprintf(w, "<superblock uuid=\"\" time=\"1\" transaction=\"1\" data_block_size=\"128\" nr_data_blocks=\"%d\">\n", nrData)
	for _, id := range slices.Sorted(maps.Keys(p)) {
		m := p[id]
		// Details that differ by device, to see each read back.
		fmt.Fprintf(w, "<device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"%d\" creation_time=\"%d\" snap_time=\"%d\">\n",
			id, len(m), 3*id, id%1000, id%1000+1)
		keys := sortedKeys(m)
		for i := 0; i < len(keys); {
			j := i + 1
			for j < len(keys) && keys[j] == keys[j-1]+1 && m[keys[j]] == m[keys[j-1]]+1 {
				j++
			}
			if j-i == 1 {
				fmt.Fprintf(w, "<single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"0\"/>\n", keys[i], m[keys[i]])
			} else {
				fmt.Fprintf(w, "<range_mapping origin_begin=\"%d\" data_begin=\"%d\" length=\"%d\" time=\"0\"/>\n", keys[i], m[keys[i]], j-i)
			}
			i = j
		}
		fmt.Fprintln(w, "</device>")
	}
	fmt.Fprintln(w, "</superblock>")
}

// restore writes p into a metadata file with thin_restore and returns its
// path.
func (p pool) restore(t testing.TB) string {
	t.Helper()
	restore := thinTool(t, "thin_restore")
	dir := t.TempDir()
	in := filepath.Join(dir, "metadata.xml")
	var buf bytes.Buffer
	p.writeXML(&buf)
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range p {
		n += len(m)
	}
	out := filepath.Join(dir, "metadata")
	// Room for the leaves (16 bytes an entry, leaves at least a third
	// full), the space maps and slack.
	if err := os.WriteFile(out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, int64(8<<20+n*48)); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(restore, "-q", "-i", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("thin_restore: %v: %s", err, b)
	}
	return out
}

// thinDelta runs thin_delta on the metadata file and returns the blocks
// it reports as different, left only or right only, as sorted extents.
func thinDelta(t testing.TB, file string, snap1, snap2 uint32) []extent {
	t.Helper()
	tool := thinTool(t, "thin_delta")
	b, err := exec.Command(tool, "--snap1", fmt.Sprint(snap1), "--snap2", fmt.Sprint(snap2), file).Output()
	if err != nil {
		t.Fatalf("thin_delta: %v", err)
	}
	var out []extent
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("thin_delta printed bad XML: %v\n%s", err, b)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "superblock", "diff", "same":
			continue
		case "different", "left_only", "right_only":
		default:
			t.Fatalf("thin_delta printed an element %q this test does not know:\n%s", se.Name.Local, b)
		}
		var e extent
		for _, a := range se.Attr {
			v, err := strconv.ParseUint(a.Value, 10, 64)
			if err != nil {
				t.Fatalf("thin_delta: %s=%q", a.Name.Local, a.Value)
			}
			switch a.Name.Local {
			case "begin":
				e.Block = v
			case "length":
				e.Len = v
			}
		}
		out = append(out, e)
	}
	return coalesce(out)
}

// reRestore dumps the metadata file with thin_dump and restores the dump
// with thin_restore into a new file, whose trees share nothing: for
// thin_delta to read what the test writer laid out (thin_delta wants the
// space maps, which the writer does not write).
func reRestore(t testing.TB, file string) string {
	t.Helper()
	dump := thinTool(t, "thin_dump")
	restore := thinTool(t, "thin_restore")
	dir := t.TempDir()
	xmlFile, out := filepath.Join(dir, "dump.xml"), filepath.Join(dir, "metadata")
	b, err := exec.Command(dump, file).Output()
	if err != nil {
		t.Fatalf("thin_dump: %v", err)
	}
	if err := os.WriteFile(xmlFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, 2*st.Size()+8<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(restore, "-q", "-i", xmlFile, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("thin_restore: %v: %s", err, b)
	}
	return out
}
