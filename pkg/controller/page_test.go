package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

var errToken = fmt.Errorf("%w: bad", thinpool.ErrInvalidToken)

// records is an in-memory list with the engine's List contract, to drive
// page: ids in order, a page from the first id at or after the token, and
// the next id as the next token.
type records struct {
	ids   []string
	calls int
}

func (r *records) list(token string, max int) ([]*thinpool.Volume, string, error) {
	r.calls++
	if token != "" && !strings.HasPrefix(token, "vol-") {
		return nil, "", errToken
	}
	i := sort.SearchStrings(r.ids, token)
	var out []*thinpool.Volume
	for ; i < len(r.ids); i++ {
		if max > 0 && len(out) == max {
			return out, r.ids[i], nil
		}
		out = append(out, &thinpool.Volume{ID: r.ids[i]})
	}
	return out, "", nil
}

func ids(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("vol-%04d", i))
	}
	return s
}

// walk pages through everything with page size max and filter keep,
// returning the ids in order and the pages' sizes.
func walk(t *testing.T, r *records, max int, keep func(string) bool) ([]string, []int) {
	t.Helper()
	var got []string
	var sizes []int
	token := ""
	for range 10000 {
		out, next, err := page(r.list, token, max, func(v *thinpool.Volume) (string, bool, error) {
			return v.ID, keep(v.ID), nil
		})
		if err != nil {
			t.Fatalf("page(%q, %d): %v", token, max, err)
		}
		if max > 0 && len(out) > max {
			t.Fatalf("page(%q, %d) returned %d entries", token, max, len(out))
		}
		got = append(got, out...)
		sizes = append(sizes, len(out))
		if next == "" {
			return got, sizes
		}
		token = next
	}
	t.Fatal("pagination does not end")
	return nil, nil
}

func TestPage(t *testing.T) {
	all := func(string) bool { return true }
	every7th := func(id string) bool { var n int; fmt.Sscanf(id, "vol-%d", &n); return n%7 == 0 }
	for _, n := range []int{0, 1, 2, 5, 255, 256, 257, 1000} {
		for _, max := range []int{0, 1, 2, 3, 256, 300, 2000} {
			for name, keep := range map[string]func(string) bool{"all": all, "every 7th": every7th} {
				t.Run(fmt.Sprintf("%d records, max %d, %s", n, max, name), func(t *testing.T) {
					r := &records{ids: ids(n)}
					want := slices.DeleteFunc(ids(n), func(id string) bool { return !keep(id) })
					got, sizes := walk(t, r, max, keep)
					if !slices.Equal(got, want) {
						t.Fatalf("got %d ids %v, want %d", len(got), got, len(want))
					}
					// Every page but the last is full.
					for i, size := range sizes[:len(sizes)-1] {
						if max == 0 || size != max {
							t.Fatalf("page %d of %v is not full", i, sizes)
						}
					}
				})
			}
		}
	}
}

func TestPageBatches(t *testing.T) {
	// A sparse filter does not cost a call per record.
	r := &records{ids: ids(1000)}
	out, next, err := page(r.list, "", 1, func(v *thinpool.Volume) (string, bool, error) { return v.ID, v.ID == "vol-0999", nil })
	if err != nil || !slices.Equal(out, []string{"vol-0999"}) || next != "" {
		t.Fatalf("page = %v, %q, %v", out, next, err)
	}
	if r.calls > 1000/minBatch+1 {
		t.Fatalf("%d calls to list 1000 records", r.calls)
	}
	// Without a limit, one call.
	r = &records{ids: ids(1000)}
	if _, _, err := page(r.list, "", 0, func(v *thinpool.Volume) (string, bool, error) { return v.ID, true, nil }); err != nil || r.calls != 1 {
		t.Fatalf("unlimited page: %d calls, %v", r.calls, err)
	}
}

func TestPageErrors(t *testing.T) {
	r := &records{ids: ids(10)}
	keepAll := func(v *thinpool.Volume) (string, bool, error) { return v.ID, true, nil }
	if _, _, err := page(r.list, "invalid-token", 2, keepAll); err != errToken {
		t.Fatalf("bad token: %v, want the list's error as is", err)
	}
	boom := fmt.Errorf("boom")
	_, _, err := page(r.list, "", 0, func(v *thinpool.Volume) (string, bool, error) { return "", false, boom })
	if err != boom {
		t.Fatalf("keep error: %v", err)
	}
	// A token that was the next record's id, since deleted, still works.
	out, _, err := page(r.list, "vol-0003x", 2, keepAll)
	if err != nil || !slices.Equal(out, []string{"vol-0004", "vol-0005"}) {
		t.Fatalf("page after a deleted id = %v, %v", out, err)
	}
}
