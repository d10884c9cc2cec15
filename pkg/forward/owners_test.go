package forward

import (
	"slices"
	"testing"
)

// TestOwners: the cache keeps the most recently used ids, and forgets
// ids and the ids of addresses on demand.
func TestOwners(t *testing.T) {
	a, b := Owner{"10.0.0.1:9443", "node-a"}, Owner{"10.0.0.2:9443", "node-b"}
	cases := []struct {
		name string
		do   func(o *owners)
		want []string // the ids left, in any order
	}{
		{"the least recently used goes", func(o *owners) {
			o.put("x", a)
			o.put("y", a)
			o.get("x")
			o.put("z", b)
		}, []string{"x", "z"}},
		{"put again moves an id to the front", func(o *owners) {
			o.put("x", a)
			o.put("y", a)
			o.put("x", b)
			o.put("z", b)
		}, []string{"x", "z"}},
		{"forget", func(o *owners) {
			o.put("x", a)
			o.put("y", b)
			o.forget("x", "unknown")
		}, []string{"y"}},
		{"forget the ids of gone addresses", func(o *owners) {
			o.put("x", a)
			o.put("y", b)
			o.forgetAddrs(map[string]bool{b.Addr: true})
		}, []string{"y"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOwners(2)
			c.do(o)
			var got []string
			for _, id := range []string{"x", "y", "z"} {
				if _, ok := o.get(id); ok {
					got = append(got, id)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("ids %v, want %v", got, c.want)
			}
		})
	}
	o := newOwners(2)
	o.put("x", a)
	o.put("x", b)
	if w, _ := o.get("x"); w != b {
		t.Errorf("owner %v after a second put, want %v", w, b)
	}
}
