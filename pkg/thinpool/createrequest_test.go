package thinpool

import (
	"errors"
	"strings"
	"testing"
)

func TestAnswers(t *testing.T) {
	xfs := map[string]string{"fsType": "xfs"}
	v := &Volume{ID: "vol-1", Kind: KindVolume, Name: "a", SizeBytes: 2 * gib, SourceID: "snap-1", Parameters: xfs}
	req := func(required, limit uint64) CreateRequest {
		return CreateRequest{Name: "a", RequiredBytes: required, LimitBytes: limit, SourceID: "snap-1", Parameters: map[string]string{"fsType": "xfs"}}
	}
	with := func(r CreateRequest, edit func(*CreateRequest)) CreateRequest { edit(&r); return r }
	tests := []struct {
		name string
		v    *Volume
		req  CreateRequest
		says []string // nil: v answers req
		want error    // ErrExists unless set
	}{
		{name: "no range", v: v, req: req(0, 0)},
		{name: "exact", v: v, req: req(2*gib, 2*gib)},
		{name: "required below: grown since", v: v, req: req(gib, 0)},
		{name: "grown since, within the limit", v: v, req: req(gib, 3*gib)},
		{name: "the filesystem's minimum is not the rule's", v: v, req: with(req(gib, 0), func(r *CreateRequest) { r.FSMinBytes, r.FSType = 4*gib, "xfs" })},
		{name: "empty parameters answer none kept", v: &Volume{ID: "vol-2", SizeBytes: gib}, req: CreateRequest{Name: "a", Parameters: map[string]string{}}},

		{name: "required above", v: v, req: req(3*gib, 0),
			says: []string{"its 2147483648 bytes are outside the size of at least 3221225472 bytes asked for", "a size range that holds its 2147483648 bytes"}},
		{name: "grown beyond the limit", v: v, req: req(gib, gib),
			says: []string{"outside the size range [1073741824, 1073741824] bytes", "use another name, or a size range"}},
		{name: "other parameters", v: v, req: with(req(0, 0), func(r *CreateRequest) { r.Parameters = map[string]string{"fsType": "ext4"} }),
			says: []string{"its parameters are map[fsType:xfs], not map[fsType:ext4]", "or the StorageClass it was created with"}},
		{name: "no parameters", v: v, req: with(req(0, 0), func(r *CreateRequest) { r.Parameters = nil }),
			says: []string{"its parameters are map[fsType:xfs], not map[]"}},
		{name: "other source", v: v, req: with(req(0, 0), func(r *CreateRequest) { r.SourceID = "snap-2" }),
			says: []string{"it is a copy of snap-1, not a copy of snap-2", "or the source it was created from"}},
		{name: "no source", v: v, req: with(req(0, 0), func(r *CreateRequest) { r.SourceID = "" }),
			says: []string{"it is a copy of snap-1, not a blank volume"}},
		{name: "a source for a blank volume", v: &Volume{ID: "vol-2", SizeBytes: gib}, req: CreateRequest{Name: "a", SourceID: "snap-1"},
			says: []string{"it is a blank volume, not a copy of snap-1"}},
		{name: "a range that holds nothing", v: v, req: req(3*gib, gib), want: ErrOutOfRange,
			says: []string{"capacity range: limit_bytes 1073741824 is below required_bytes 3221225472"}},
		{name: "everything differs, all said", v: v, req: CreateRequest{Name: "a", RequiredBytes: 3 * gib},
			says: []string{`volume "a" exists as vol-1, and it is a copy of snap-1, not a blank volume; its parameters`, "; its 2147483648 bytes",
				"use another name, or the source it was created from and the StorageClass it was created with and a size range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Answers(tt.req)
			if tt.says == nil {
				if err != nil {
					t.Fatalf("Answers = %v, want nil", err)
				}
				return
			}
			want := tt.want
			if want == nil {
				want = ErrExists
			}
			if !errors.Is(err, want) {
				t.Fatalf("Answers = %v, want %v", err, want)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Answers = %q, want it to say %q", err, s)
				}
			}
		})
	}
}

// Whatever size VolumeSize picks for a request, the volume made of it
// answers the same request again.
func TestAVolumeOfTheSizePickedAnswersItsRequest(t *testing.T) {
	const block = 4
	for fs := uint64(0); fs <= 12; fs += 3 {
		for src := uint64(0); src <= 12; src += 4 {
			for req := uint64(0); req <= 20; req++ {
				for lim := uint64(0); lim <= 20; lim++ {
					r := CreateRequest{Name: "a", RequiredBytes: req, LimitBytes: lim, FSMinBytes: fs, FSType: "xfs"}
					if src > 0 {
						r.SourceID = "snap-1"
					}
					size, err := VolumeSize(r, src, block)
					if err != nil {
						continue
					}
					v := &Volume{ID: "vol-1", Name: "a", SizeBytes: size, SourceID: r.SourceID}
					if err := v.Answers(r); err != nil {
						t.Fatalf("fs %d, source %d, [%d, %d]: a volume of the %d bytes picked does not answer: %v", fs, src, req, lim, size, err)
					}
				}
			}
		}
	}
}

// A create of a name that is taken is answered by the rule: the volume of
// that name, unchanged, or ErrExists and nothing made.
func TestCreateVolumeAnswersATakenName(t *testing.T) {
	xfs := map[string]string{"fsType": "xfs"}
	blank := CreateRequest{Name: "a", RequiredBytes: 100*mib + 1, LimitBytes: 400 * mib, Parameters: xfs}
	copyOf := func(src string) CreateRequest {
		return CreateRequest{Name: "a", SourceID: src, SourceKind: KindSnapshot, Parameters: xfs}
	}
	edit := func(r CreateRequest, f func(*CreateRequest)) CreateRequest { f(&r); return r }
	grow := func(to uint64) func(*testing.T, *Engine, *Volume) {
		return func(t *testing.T, e *Engine, v *Volume) {
			if _, err := e.Expand(t.Context(), v.ID, to); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		first   CreateRequest // source ids are the names of the snapshots made for the test
		between func(*testing.T, *Engine, *Volume)
		again   CreateRequest
		want    error  // nil: the volume the first made
		says    string // what the error says
	}{
		{name: "same request twice", first: blank, again: blank},
		{name: "same rounded size", first: blank, again: edit(blank, func(r *CreateRequest) { r.RequiredBytes = 100*mib + 64*kib })},
		{name: "smaller required", first: blank, again: edit(blank, func(r *CreateRequest) { r.RequiredBytes = mib })},
		{name: "grown since, within the limit", first: blank, between: grow(400 * mib), again: blank},
		{name: "grown since, no limit", first: blank, between: grow(400 * mib), again: edit(blank, func(r *CreateRequest) { r.LimitBytes = 0 })},
		{name: "a copy again", first: copyOf("s1"), again: copyOf("s1")},
		{name: "the source deleted since", first: copyOf("s1"),
			between: func(t *testing.T, e *Engine, v *Volume) {
				if err := e.Delete(t.Context(), v.SourceID); err != nil {
					t.Fatal(err)
				}
			}, again: copyOf("s1")},

		{name: "grown beyond the limit", first: blank, between: grow(500 * mib), again: blank,
			want: ErrExists, says: "its 524288000 bytes are outside the size range [104857601, 419430400] bytes"},
		{name: "larger required", first: blank, again: edit(blank, func(r *CreateRequest) { r.RequiredBytes = 200 * mib }),
			want: ErrExists, says: "outside the size range [209715200, 419430400] bytes"},
		{name: "limit below the size", first: blank, again: edit(blank, func(r *CreateRequest) { r.RequiredBytes, r.LimitBytes = mib, 100*mib }),
			want: ErrExists, says: "outside the size range [1048576, 104857600] bytes"},
		{name: "different parameters", first: blank, again: edit(blank, func(r *CreateRequest) { r.Parameters = map[string]string{"fsType": "ext4"} }),
			want: ErrExists, says: "the StorageClass it was created with"},
		{name: "different source", first: copyOf("s1"), again: copyOf("s2"), want: ErrExists, says: "not a copy of"},
		{name: "a source where there was none", first: blank, again: edit(blank, func(r *CreateRequest) { r.SourceID = "s1" }),
			want: ErrExists, says: "it is a blank volume, not a copy of"},
		{name: "no source where there was one", first: copyOf("s1"), again: edit(copyOf(""), func(r *CreateRequest) { r.SourceKind = "" }),
			want: ErrExists, says: "not a blank volume"},
		{name: "a limit below the required size", first: blank, again: edit(blank, func(r *CreateRequest) { r.RequiredBytes, r.LimitBytes = 2*mib, mib }),
			want: ErrOutOfRange, says: "capacity range: limit_bytes 1048576 is below required_bytes 2097152"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			origin, err := e.CreateVolume(t.Context(), CreateRequest{Name: "origin", RequiredBytes: 100 * mib})
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]string{}
			for _, name := range []string{"s1", "s2"} {
				s, err := e.CreateSnapshot(t.Context(), name, origin.ID, nil)
				if err != nil {
					t.Fatal(err)
				}
				ids[name] = s.ID
			}
			resolve := func(r CreateRequest) CreateRequest {
				if r.SourceID != "" {
					r.SourceID = ids[r.SourceID]
				}
				return r
			}
			v, err := e.CreateVolume(t.Context(), resolve(tt.first))
			if err != nil {
				t.Fatal(err)
			}
			if tt.between != nil {
				tt.between(t, e, v)
			}
			if v, err = e.Get(v.ID); err != nil {
				t.Fatal(err)
			}
			was := stateNow(t, e, fk)

			got, err := e.CreateVolume(t.Context(), resolve(tt.again))
			if tt.want != nil {
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
					t.Fatalf("got %+v, %v; want %v saying %q", got, err, tt.want, tt.says)
				}
			} else if err != nil || got.ID != v.ID || got.ThinID != v.ThinID || got.SizeBytes != v.SizeBytes {
				t.Fatalf("got %+v, %v; want %+v again", got, err, v)
			}
			if now := stateNow(t, e, fk); now.txid != was.txid || len(now.records) != len(was.records) || now.promised != was.promised {
				t.Fatalf("the create of a taken name changed the engine:\nbefore %+v\nafter  %+v", was, now)
			}
			checkAgreement(t, e, fk)
		})
	}
}

// Two creates of one name at once make one volume: the second waits for
// the first's name and is then answered by the rule.
func TestConcurrentCreatesOfOneName(t *testing.T) {
	first := CreateRequest{Name: "a", RequiredBytes: gib}
	tests := []struct {
		name   string
		second CreateRequest
		want   error // nil: the first's volume
	}{
		{"same request", first, nil},
		{"a request the volume fits", CreateRequest{Name: "a", RequiredBytes: mib, LimitBytes: 2 * gib}, nil},
		{"a larger request", CreateRequest{Name: "a", RequiredBytes: 2 * gib}, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			waiting := make(chan string, 2)
			e.locks.onWait = func(key string) { waiting <- key }
			g := holdInIntent(e, fk)
			type result struct {
				v   *Volume
				err error
			}
			firstDone, secondDone := make(chan result), make(chan result)
			go func() {
				v, err := e.CreateVolume(t.Context(), first)
				firstDone <- result{v, err}
			}()
			<-g.entered // the first holds the name, inside its intent's commit
			go func() {
				v, err := e.CreateVolume(t.Context(), tt.second)
				secondDone <- result{v, err}
			}()
			if key := <-waiting; key != lockName(KindVolume, "a") {
				t.Fatalf("the second create waits for %s, want the name", key)
			}
			g.open()
			a, b := <-firstDone, <-secondDone
			if a.err != nil {
				t.Fatalf("first: %v", a.err)
			}
			if tt.want != nil {
				if !errors.Is(b.err, tt.want) {
					t.Fatalf("second: %+v, %v; want %v", b.v, b.err, tt.want)
				}
			} else if b.err != nil || b.v.ID != a.v.ID {
				t.Fatalf("second: %+v, %v; want %s", b.v, b.err, a.v.ID)
			}
			if n := fk.count("create_thin"); n != 1 {
				t.Fatalf("%d create_thin for one name", n)
			}
			checkAgreement(t, e, fk)
		})
	}
}

// A retry that finds its name only once the recovery before its change
// settles an earlier try is answered by the same rule.
func TestRecoveredCreateAnswersByTheRule(t *testing.T) {
	first := CreateRequest{Name: "v", RequiredBytes: mib, Parameters: map[string]string{"fsType": "xfs"}}
	tests := []struct {
		name  string
		again CreateRequest
		want  error // nil: the volume the pool kept
	}{
		{"same request", first, nil},
		{"other parameters", CreateRequest{Name: "v", RequiredBytes: mib}, ErrExists},
		{"larger required", CreateRequest{Name: "v", RequiredBytes: 2 * mib, Parameters: first.Parameters}, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			// The pool keeps the create, but neither read after it works:
			// the record stays pending until the next change recovers.
			e.k = &failingAfterTx{fakeKernel: fk, fail: []string{"status-nocommit", "status"}}
			if _, err := e.CreateVolume(t.Context(), first); err == nil {
				t.Fatal("a create whose pool could not be read after its transaction reported success")
			}
			if _, err := e.GetByName(KindVolume, "v"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("before the recovery the name is %v; want it pending, so the look-up cannot answer", err)
			}
			got, err := e.CreateVolume(t.Context(), tt.again)
			kept, lookErr := e.GetByName(KindVolume, "v")
			if lookErr != nil {
				t.Fatalf("after the recovery: %v", lookErr)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %+v, %v; want %v", got, err, tt.want)
				}
			} else if err != nil || got.ID != kept.ID {
				t.Fatalf("got %+v, %v; want %s", got, err, kept.ID)
			}
			if n := len(fk.thinIDs()); n != 1 {
				t.Fatalf("the pool has %d thin devices after a create and its retry, want 1", n)
			}
			checkAgreement(t, e, fk)
		})
	}
}
