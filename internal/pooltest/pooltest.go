// Package pooltest is the contract of thinpool.Pool that the CSI services
// rely on, as tests any implementation must pass: the engine (over the
// fake kernel of its unit tests) and internal/fakepool both run it, so
// that the fake the handlers' unit tests use answers as the engine does.
package pooltest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Harness makes the pool under test.
type Harness struct {
	// New returns an empty pool with room for a few GiB of volumes.
	New func(t *testing.T) thinpool.Pool
	// Hold makes something keep an active volume's device open, as a
	// mount does, until the test ends or release is called.
	Hold func(t *testing.T, p thinpool.Pool, id string) (release func())
}

const gib = 1 << 30

// Run runs the contract.
func Run(t *testing.T, h Harness) {
	t.Run("CreateVolume", func(t *testing.T) { createVolume(t, h) })
	t.Run("CreateVolumeAgain", func(t *testing.T) { createVolumeAgain(t, h) })
	t.Run("CreateSnapshot", func(t *testing.T) { createSnapshot(t, h) })
	t.Run("Delete", func(t *testing.T) { deleteRecord(t, h) })
	t.Run("Activation", func(t *testing.T) { activation(t, h) })
	t.Run("Expand", func(t *testing.T) { expand(t, h) })
	t.Run("List", func(t *testing.T) { list(t, h) })
	t.Run("EndedContext", func(t *testing.T) { endedContext(t, h) })
	t.Run("GroupSnapshot", func(t *testing.T) { groupSnapshot(t, h) })
	t.Run("GroupSnapshotRefusals", func(t *testing.T) { groupSnapshotRefusals(t, h) })
}

// must fails the test on the error of a call that has to succeed and
// returns its value: vol(t)(p.Get(id)).
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var (
	group = must[*thinpool.GroupSnapshot]
	vol   = must[*thinpool.Volume]
	act   = must[thinpool.Activation]
	path  = must[string]
	bytes = must[uint64]
)

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want an error matching %v", what, err, want)
	}
}

func createVolume(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	block := p.BlockSizeBytes()
	v := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib + 1, Parameters: map[string]string{"k": "v"}}))
	if v.Kind != thinpool.KindVolume || v.Name != "a" || v.SizeBytes != thinpool.RoundUp(gib+1, block) {
		t.Errorf("created %+v, want volume a of %d bytes", v, thinpool.RoundUp(gib+1, block))
	}
	again := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib + 1, Parameters: map[string]string{"k": "v"}}))
	if again.ID != v.ID {
		t.Errorf("the same request again made %s, want %s", again.ID, v.ID)
	}
	if got := vol(t)(p.GetByName(thinpool.KindVolume, "a")); got.ID != v.ID {
		t.Errorf("GetByName = %s, want %s", got.ID, v.ID)
	}
	snap := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, nil))
	_, err := p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", SourceID: snap.ID, Parameters: map[string]string{"k": "v"}})
	wantErr(t, "the name with another source", err, thinpool.ErrExists)

	_, err = p.CreateVolume(ctx, thinpool.CreateRequest{Name: "b", SourceID: "vol-missing"})
	wantErr(t, "a missing source", err, thinpool.ErrSourceNotFound)
	_, err = p.CreateVolume(ctx, thinpool.CreateRequest{Name: "c", RequiredBytes: block, LimitBytes: block, SourceID: snap.ID})
	wantErr(t, "a copy whose limit is below its source", err, thinpool.ErrOutOfRange)
	if c := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "c", RequiredBytes: block, SourceID: snap.ID})); c.SizeBytes != snap.SizeBytes {
		t.Errorf("a copy asked smaller than its source is %d bytes, want the source's %d", c.SizeBytes, snap.SizeBytes)
	}
	_, err = p.CreateVolume(ctx, thinpool.CreateRequest{Name: "c2", SourceID: v.ID, SourceKind: thinpool.KindSnapshot})
	wantErr(t, "a volume's id as a snapshot", err, thinpool.ErrNotFound)
	if errors.Is(err, thinpool.ErrSourceNotFound) {
		t.Errorf("a volume's id as a snapshot: %v, which says the source may be elsewhere", err)
	}
	restore := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "d", SourceID: snap.ID}))
	if restore.SizeBytes != snap.SizeBytes || restore.SourceID != snap.ID {
		t.Errorf("restore %+v, want %d bytes from %s", restore, snap.SizeBytes, snap.ID)
	}
	_, err = p.CreateVolume(ctx, thinpool.CreateRequest{Name: "", RequiredBytes: gib})
	wantErr(t, "no name", err, thinpool.ErrInvalidArgument)
	if e := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "e"})); e.SizeBytes != gib {
		t.Errorf("a blank volume asked no size is %d bytes, want 1 GiB", e.SizeBytes)
	}
	_, err = p.CreateVolume(ctx, thinpool.CreateRequest{Name: "e2", RequiredBytes: 2 * gib, LimitBytes: gib})
	wantErr(t, "a limit below the required size", err, thinpool.ErrOutOfRange)
	_, err = p.CreateVolume(ctx, thinpool.CreateRequest{Name: "f", RequiredBytes: 1 << 50})
	wantErr(t, "more than the budget", err, thinpool.ErrOverBudget)
}

// A create of a name that is taken is answered by the one rule,
// (*thinpool.Volume).Answers: the volume when its source, parameters and
// size fit, even once grown or once its source is deleted.
func createVolumeAgain(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	params := map[string]string{"k": "v"}
	ranged := thinpool.CreateRequest{Name: "a", RequiredBytes: gib, LimitBytes: 3 * gib, Parameters: params}
	v := vol(t)(p.CreateVolume(ctx, ranged))
	vol(t)(p.Expand(ctx, v.ID, 2*gib))
	if again := vol(t)(p.CreateVolume(ctx, ranged)); again.ID != v.ID {
		t.Errorf("grown within the limit, the request again made %s, want %s", again.ID, v.ID)
	}
	for _, c := range []struct {
		what string
		req  thinpool.CreateRequest
		want error
	}{
		{"grown beyond the limit", thinpool.CreateRequest{Name: "a", RequiredBytes: gib, LimitBytes: gib, Parameters: params}, thinpool.ErrExists},
		{"a larger required size", thinpool.CreateRequest{Name: "a", RequiredBytes: 3 * gib, Parameters: params}, thinpool.ErrExists},
		{"other parameters", thinpool.CreateRequest{Name: "a", RequiredBytes: gib}, thinpool.ErrExists},
		{"a range that holds nothing", thinpool.CreateRequest{Name: "a", RequiredBytes: 2 * gib, LimitBytes: gib, Parameters: params}, thinpool.ErrOutOfRange},
	} {
		_, err := p.CreateVolume(ctx, c.req)
		wantErr(t, c.what, err, c.want)
	}

	snap := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, nil))
	restore := thinpool.CreateRequest{Name: "r", SourceID: snap.ID, SourceKind: thinpool.KindSnapshot, Parameters: params}
	r := vol(t)(p.CreateVolume(ctx, restore))
	_, err := p.CreateVolume(ctx, thinpool.CreateRequest{Name: "r", Parameters: params})
	wantErr(t, "no source for a restore", err, thinpool.ErrExists)
	if err := p.Delete(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	if again := vol(t)(p.CreateVolume(ctx, restore)); again.ID != r.ID {
		t.Errorf("the restore again once its snapshot is deleted made %s, want %s", again.ID, r.ID)
	}
}

func createSnapshot(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	v := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	w := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "b", RequiredBytes: gib}))
	s := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, map[string]string{"k": "v"}))
	if s.Kind != thinpool.KindSnapshot || s.SourceID != v.ID || s.SizeBytes != v.SizeBytes {
		t.Errorf("snapshot %+v, want one of %s with its size", s, v.ID)
	}
	if again := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, map[string]string{"k": "v"})); again.ID != s.ID {
		t.Errorf("the same snapshot again made %s, want %s", again.ID, s.ID)
	}
	_, err := p.CreateSnapshot(ctx, "s", w.ID, nil)
	wantErr(t, "the name from another volume", err, thinpool.ErrExists)
	if err != nil && !strings.Contains(err.Error(), "use another name") {
		t.Errorf("the name from another volume: %q does not say to use another name", err)
	}
	_, err = p.CreateSnapshot(ctx, "t", s.ID, nil)
	wantErr(t, "a snapshot of a snapshot", err, thinpool.ErrInvalidArgument)
	_, err = p.CreateSnapshot(ctx, "u", "vol-missing", nil)
	wantErr(t, "a missing volume", err, thinpool.ErrNotFound)
	if named := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "s", RequiredBytes: gib})); named.ID == s.ID {
		t.Error("a volume and a snapshot share a name's record: their names are separate")
	}
}

func deleteRecord(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	v := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	s := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, nil))
	if err := p.Delete(ctx, v.ID); err != nil {
		t.Fatalf("delete a volume with a snapshot: %v", err)
	}
	_, err := p.Get(v.ID)
	wantErr(t, "Get after Delete", err, thinpool.ErrNotFound)
	wantErr(t, "Delete again", p.Delete(ctx, v.ID), thinpool.ErrNotFound)
	if _, err := p.Get(s.ID); err != nil {
		t.Errorf("the snapshot of a deleted volume: %v", err)
	}

	w := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "b", RequiredBytes: gib}))
	act(t)(p.ActivateDevice(ctx, w.ID, false))
	release := h.Hold(t, p, w.ID)
	wantErr(t, "Delete of a held device", p.Delete(ctx, w.ID), thinpool.ErrInUse)
	release()
	if err := p.Delete(ctx, w.ID); err != nil {
		t.Errorf("Delete of an active device nothing holds: %v", err)
	}
	_, err = p.DevicePath(w.ID)
	wantErr(t, "DevicePath of a deleted volume", err, thinpool.ErrNotFound)
}

func activation(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	v := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	s := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, nil))

	if err := p.Condition(v.ID); err != nil {
		t.Errorf("Condition of a healthy inactive volume: %v", err)
	}
	wantErr(t, "Condition of an unknown id", p.Condition("vol-missing"), thinpool.ErrNotFound)
	_, err := p.DevicePath(v.ID)
	wantErr(t, "DevicePath before activation", err, thinpool.ErrNotFound)
	_, err = p.DeviceBytes(v.ID)
	wantErr(t, "DeviceBytes before activation", err, thinpool.ErrNotFound)
	_, err = p.ActivateDevice(ctx, s.ID, false)
	wantErr(t, "a snapshot read-write", err, thinpool.ErrInvalidArgument)
	if a := act(t)(p.ActivateDevice(ctx, s.ID, true)); !a.Activated || a.Path == "" {
		t.Errorf("snapshot read-only: %+v, want a new device", a)
	}
	_, err = p.ActivateDevice(ctx, "vol-missing", false)
	wantErr(t, "an unknown id", err, thinpool.ErrNotFound)

	first := act(t)(p.ActivateDevice(ctx, v.ID, false))
	if !first.Activated {
		t.Error("the first activation says the device was active")
	}
	again := act(t)(p.ActivateDevice(ctx, v.ID, false))
	if again.Activated || again.Path != first.Path {
		t.Errorf("activated again: %+v, want %s, already active", again, first.Path)
	}
	if path := path(t)(p.DevicePath(v.ID)); path != first.Path {
		t.Errorf("DevicePath = %s, want %s", path, first.Path)
	}
	if n := bytes(t)(p.DeviceBytes(v.ID)); n != v.SizeBytes {
		t.Errorf("DeviceBytes = %d, want %d", n, v.SizeBytes)
	}
	if err := p.Condition(v.ID); err != nil {
		t.Errorf("Condition of a healthy active volume: %v", err)
	}
	// Another mode: switched while nothing holds the device, refused
	// while something does.
	if ro := act(t)(p.ActivateDevice(ctx, v.ID, true)); ro.Activated {
		t.Error("a change of mode says it activated a new device")
	}
	release := h.Hold(t, p, v.ID)
	_, err = p.ActivateDevice(ctx, v.ID, false)
	wantErr(t, "a change of mode of a held device", err, thinpool.ErrInUse)
	wantErr(t, "Deactivate of a held device", p.Deactivate(ctx, v.ID), thinpool.ErrInUse)
	release()
	act(t)(p.ActivateDevice(ctx, v.ID, false))
	if err := p.Deactivate(ctx, v.ID); err != nil {
		t.Errorf("Deactivate: %v", err)
	}
	if err := p.Deactivate(ctx, v.ID); err != nil {
		t.Errorf("Deactivate of an inactive volume: %v", err)
	}
}

func expand(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	v := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	s := vol(t)(p.CreateSnapshot(ctx, "s", v.ID, nil))
	act(t)(p.ActivateDevice(ctx, v.ID, false))
	grown := vol(t)(p.Expand(ctx, v.ID, 2*gib+1))
	want := thinpool.RoundUp(2*gib+1, p.BlockSizeBytes())
	if grown.SizeBytes != want {
		t.Errorf("expanded to %d bytes, want %d", grown.SizeBytes, want)
	}
	if n := bytes(t)(p.DeviceBytes(v.ID)); n != want {
		t.Errorf("the active device has %d bytes after the expand, want %d", n, want)
	}
	if same := vol(t)(p.Expand(ctx, v.ID, gib)); same.SizeBytes != want {
		t.Errorf("asked for less, the volume became %d bytes, want %d", same.SizeBytes, want)
	}
	_, err := p.Expand(ctx, s.ID, 2*gib)
	wantErr(t, "a snapshot", err, thinpool.ErrInvalidArgument)
	_, err = p.Expand(ctx, "vol-missing", 2*gib)
	wantErr(t, "an unknown id", err, thinpool.ErrNotFound)
}

func list(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		ids = append(ids, vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: name, RequiredBytes: gib})).ID)
	}
	vol(t)(p.CreateSnapshot(ctx, "s", ids[0], nil))
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		page, next, err := p.List(thinpool.KindVolume, token, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Errorf("a page of %d entries, want at most 2", len(page))
		}
		for _, v := range page {
			if v.Kind != thinpool.KindVolume || seen[v.ID] {
				t.Errorf("listed %s (%s) again or of the wrong kind", v.ID, v.Kind)
			}
			seen[v.ID] = true
		}
		if next == "" {
			break
		}
		token = next
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("%s was not listed", id)
		}
	}
	snaps, _, err := p.List(thinpool.KindSnapshot, "", 0)
	if err != nil || len(snaps) != 1 {
		t.Errorf("listed %d snapshots (%v), want 1", len(snaps), err)
	}
	_, _, err = p.List(thinpool.KindVolume, "bogus", 0)
	wantErr(t, "a token the pool did not give", err, thinpool.ErrInvalidToken)
}

func endedContext(t *testing.T, h Harness) {
	p := h.New(t)
	v := vol(t)(p.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]error{
		"CreateVolume": func() error {
			_, err := p.CreateVolume(ctx, thinpool.CreateRequest{Name: "b", RequiredBytes: gib})
			return err
		}(),
		"CreateSnapshot": func() error { _, err := p.CreateSnapshot(ctx, "s", v.ID, nil); return err }(),
		"Expand":         func() error { _, err := p.Expand(ctx, v.ID, 2*gib); return err }(),
		"ActivateDevice": func() error { _, err := p.ActivateDevice(ctx, v.ID, false); return err }(),
		"Deactivate":     p.Deactivate(ctx, v.ID),
		"Delete":         p.Delete(ctx, v.ID),
		"CreateGroupSnapshot": func() error {
			_, err := p.CreateGroupSnapshot(ctx, "g", []string{v.ID}, nil)
			return err
		}(),
	}
	for name, err := range calls {
		wantErr(t, name+" with an ended context", err, context.Canceled)
	}
	if got := vol(t)(p.Get(v.ID)); got.SizeBytes != v.SizeBytes {
		t.Errorf("a call with an ended context changed the volume: %+v", got)
	}
	if _, err := p.GetByName(thinpool.KindVolume, "b"); !errors.Is(err, thinpool.ErrNotFound) {
		t.Errorf("a create with an ended context made the volume: %v", err)
	}
}

func groupSnapshot(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	a := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	b := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "b", RequiredBytes: 2 * gib}))
	act(t)(p.ActivateDevice(ctx, a.ID, false))
	g := group(t)(p.CreateGroupSnapshot(ctx, "g", []string{a.ID, b.ID}, nil))
	if len(g.Members) != 2 || len(g.SnapshotIDs) != 2 {
		t.Fatalf("group %+v has %d members, want 2", g.Group, len(g.Members))
	}
	for i, src := range []*thinpool.Volume{a, b} {
		m := g.Members[i]
		if m.ID != g.SnapshotIDs[i] || m.Kind != thinpool.KindSnapshot || m.SourceID != src.ID || m.SizeBytes != src.SizeBytes || m.GroupID != g.ID {
			t.Errorf("member %d is %+v, want a snapshot of %s with its size in group %s", i, m, src.ID, g.ID)
		}
		if got := vol(t)(p.Get(m.ID)); got.GroupID != g.ID {
			t.Errorf("Get of member %s: group %q, want %s", m.ID, got.GroupID, g.ID)
		}
	}
	if again := group(t)(p.CreateGroupSnapshot(ctx, "g", []string{b.ID, a.ID}, nil)); again.ID != g.ID || again.SnapshotIDs[0] != g.SnapshotIDs[0] {
		t.Errorf("the same group again (volumes in another order) made %s %v, want %s %v", again.ID, again.SnapshotIDs, g.ID, g.SnapshotIDs)
	}
	_, err := p.CreateGroupSnapshot(ctx, "g", []string{a.ID}, nil)
	wantErr(t, "the name of a group of other volumes", err, thinpool.ErrExists)
	_, err = p.CreateGroupSnapshot(ctx, "g", []string{a.ID, b.ID}, map[string]string{"k": "v"})
	wantErr(t, "the name of a group with other parameters", err, thinpool.ErrExists)
	if got := group(t)(p.GetGroupSnapshot(g.ID)); got.Name != "g" || len(got.Members) != 2 {
		t.Errorf("GetGroupSnapshot: %+v", got.Group)
	}
	// A member is a snapshot like another: it restores, but goes only
	// with its group.
	r := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "r", SourceID: g.SnapshotIDs[0], SourceKind: thinpool.KindSnapshot}))
	wantErr(t, "Delete of a member alone", p.Delete(ctx, g.SnapshotIDs[0]), thinpool.ErrInvalidArgument)
	act(t)(p.ActivateDevice(ctx, g.SnapshotIDs[1], true))
	release := h.Hold(t, p, g.SnapshotIDs[1])
	wantErr(t, "DeleteGroupSnapshot with a member held", p.DeleteGroupSnapshot(ctx, g.ID), thinpool.ErrInUse)
	vol(t)(p.Get(g.SnapshotIDs[0])) // nothing deleted
	release()
	if err := p.DeleteGroupSnapshot(ctx, g.ID); err != nil {
		t.Fatalf("DeleteGroupSnapshot: %v", err)
	}
	for _, id := range g.SnapshotIDs {
		_, err := p.Get(id)
		wantErr(t, "Get of a member after its group's delete", err, thinpool.ErrNotFound)
	}
	_, err = p.GetGroupSnapshot(g.ID)
	wantErr(t, "GetGroupSnapshot after the delete", err, thinpool.ErrNotFound)
	wantErr(t, "DeleteGroupSnapshot again", p.DeleteGroupSnapshot(ctx, g.ID), thinpool.ErrNotFound)
	vol(t)(p.Get(r.ID)) // the restore lives on
	if again := group(t)(p.CreateGroupSnapshot(ctx, "g", []string{a.ID}, nil)); again.ID == g.ID {
		t.Error("a group of a deleted group's name has the deleted group's id")
	}
}

func groupSnapshotRefusals(t *testing.T, h Harness) {
	p := h.New(t)
	ctx := t.Context()
	a := vol(t)(p.CreateVolume(ctx, thinpool.CreateRequest{Name: "a", RequiredBytes: gib}))
	s := vol(t)(p.CreateSnapshot(ctx, "s", a.ID, nil))
	cases := []struct {
		name    string
		group   string
		sources []string
		want    error
	}{
		{"no name", "", []string{a.ID}, thinpool.ErrInvalidArgument},
		{"no volume", "g", nil, thinpool.ErrInvalidArgument},
		{"a volume twice", "g", []string{a.ID, a.ID}, thinpool.ErrInvalidArgument},
		{"an empty id", "g", []string{a.ID, ""}, thinpool.ErrInvalidArgument},
		{"a snapshot", "g", []string{a.ID, s.ID}, thinpool.ErrInvalidArgument},
		{"a volume of another node", "g", []string{a.ID, "vol-elsewhere"}, thinpool.ErrNotFound},
	}
	for _, c := range cases {
		_, err := p.CreateGroupSnapshot(ctx, c.group, c.sources, nil)
		wantErr(t, c.name, err, c.want)
	}
	if _, err := p.CreateGroupSnapshot(ctx, "g", []string{a.ID, "vol-elsewhere"}, nil); err != nil && !strings.Contains(err.Error(), "one node") {
		t.Errorf("a volume of another node: %q does not say that a group's volumes must be on one node", err)
	}
	snaps, _, err := p.List(thinpool.KindSnapshot, "", 0)
	if err != nil || len(snaps) != 1 {
		t.Errorf("after the refused groups, snapshots %d (%v), want only s", len(snaps), err)
	}
	_, err = p.GetGroupSnapshot("grp-missing")
	wantErr(t, "GetGroupSnapshot of an unknown id", err, thinpool.ErrNotFound)
}
